"""loader: YAML → plain data with a position for every key; limits; friendly errors."""

from __future__ import annotations

import time

import pytest

from amelia import loader
from amelia.errors import PipelineError
from amelia.loader import format_path, load_bytes, load_file


def load(text: str):
    return load_bytes(text.encode(), "p.yaml")


def error_of(text) -> PipelineError:
    raw = text if isinstance(text, bytes) else text.encode()
    with pytest.raises(PipelineError) as info:
        load_bytes(raw, "p.yaml")
    return info.value


DOC = """\
amelia: 1
steps:
  build:
    run: make
    inputs:
      - src/a.c
      - "src/b.c"
  test: {run: make test, needs: [build, lint]}
"""


def test_plain_data():
    got = load(DOC).data
    assert got == {"amelia": 1, "steps": {
        "build": {"run": "make", "inputs": ["src/a.c", "src/b.c"]},
        "test": {"run": "make test", "needs": ["build", "lint"]},
    }}
    assert type(got) is dict and type(got["steps"]["build"]["inputs"]) is list


def test_positions_of_keys_nested_keys_and_list_items():
    pos = load(DOC).source.positions
    assert pos[()] == (1, 1)
    assert pos[("amelia",)] == (1, 1)
    assert pos[("steps",)] == (2, 1)
    assert pos[("steps", "build")] == (3, 3)
    assert pos[("steps", "build", "run")] == (4, 5)
    assert pos[("steps", "build", "inputs")] == (5, 5)
    assert pos[("steps", "build", "inputs", 0)] == (6, 9)
    assert pos[("steps", "build", "inputs", 1)] == (7, 9)
    assert pos[("steps", "test", "run")] == (8, 10)
    assert pos[("steps", "test", "needs", 1)] == (8, 41)


def test_locate_falls_back_to_the_nearest_parent():
    source = load(DOC).source
    loc = source.locate(("steps", "build", "output"))  # not in the file
    assert (loc.line, loc.col) == (3, 3)
    assert loc.path == "steps.build.output"
    assert loc.snippet == "  build:"
    assert loc.file == "p.yaml"


def test_locate_within_a_value():
    text = "amelia: 1\nsteps:\n  a:\n    run: |\n      one ${{ x }}\n      two ${{ x }} ${{ y }}\n"
    source = load(text).source
    value = load(text).data["steps"]["a"]["run"]
    second = value.index("${{ x }}", value.index("${{ x }}") + 1)
    loc = source.locate_within(("steps", "a", "run"), value, second, "${{ x }}")
    assert (loc.line, loc.col) == (6, 11)
    assert loc.snippet == "      two ${{ x }} ${{ y }}"
    # a needle that is not in the file: the key's position
    loc = source.locate_within(("steps", "a", "run"), value, 0, "${{ z }}")
    assert (loc.line, loc.col) == (4, 5)


def test_format_path():
    assert format_path(()) == ""
    assert format_path(("steps", "a", "needs", 0)) == "steps.a.needs[0]"
    assert format_path(("env", 2)) == "env[2]"


def test_duplicate_key_is_an_error_at_the_second():
    e = error_of("amelia: 1\nsteps:\n  a: {run: x}\n  b: {run: y}\n  a: {run: z}\n")
    assert e.message == "duplicate key 'a' (first at line 3)"
    assert (e.location.line, e.location.col, e.location.path) == (5, 3, "steps.a")
    assert "last one" in e.hint


def test_duplicate_key_in_a_flow_mapping():
    e = error_of("steps: {a: 1, a: 2}\n")
    assert e.message.startswith("duplicate key 'a'")
    assert (e.location.line, e.location.col) == (1, 15)


def test_size_limit(monkeypatch):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 100)
    e = error_of("a: " + "x" * 200)
    assert "larger than" in e.message and e.hint
    load("a: " + "x" * 90)  # under the limit


def test_default_size_limit_is_one_mebibyte():
    e = error_of(b"#" * (1024 * 1024 + 1))
    assert e.message == "file is larger than 1024 KiB"


def test_load_file_reads_at_most_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 50)
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * 1000)
    with pytest.raises(PipelineError, match="larger than"):
        load_file(str(p), "big.yaml")


def test_load_file_missing(tmp_path):
    with pytest.raises(PipelineError) as info:
        load_file(str(tmp_path / "none.yaml"), "none.yaml")
    assert info.value.message == "pipeline file not found: none.yaml"
    assert info.value.location.file == "none.yaml"


def test_depth_limit():
    ok = "a: " + "[" * loader.MAX_DEPTH + "]" * loader.MAX_DEPTH
    assert load(ok).data["a"] is not None
    deep = "a: " + "[" * (loader.MAX_DEPTH + 1) + "]" * (loader.MAX_DEPTH + 1)
    e = error_of(deep)
    assert e.message == f"nesting deeper than {loader.MAX_DEPTH} levels"
    assert e.location.line == 1


def test_very_deep_nesting_is_a_yaml_error_not_a_crash():
    n = 50_000
    e = error_of("a: " + "[" * n + "]" * n)
    assert e.message.startswith("invalid YAML") or "nesting" in e.message


def test_depth_through_aliases_counts():
    inner = "[" * 40 + "1" + "]" * 40
    text = f"a: &a {inner}\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    e = error_of(text)
    assert "nesting deeper" in e.message


def test_billion_laughs_is_refused_fast():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghij":
        lines.append(f"{name}: &{name} [" + ", ".join(f"*{prev}" for _ in range(10)) + "]")
        prev = name
    started = time.monotonic()
    e = error_of("\n".join(lines) + "\n")
    assert time.monotonic() - started < 1.0
    assert "expands to more than" in e.message
    assert "aliases" in e.hint
    assert e.location.line > 1


def test_alias_use_limit(monkeypatch):
    monkeypatch.setattr(loader, "MAX_ALIASES", 5)
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 6) + "]\n"
    e = error_of(text)
    assert e.message == "more than 5 uses of YAML aliases"
    load("x: &x 1\nl: [" + ", ".join(["*x"] * 5) + "]\n")


def test_node_limit(monkeypatch):
    monkeypatch.setattr(loader, "MAX_NODES", 50)
    load("l: [" + ", ".join(["1"] * 40) + "]\n")
    e = error_of("l: [" + ", ".join(["1"] * 60) + "]\n")
    assert "expands to more than 50 nodes" in e.message


def test_a_few_aliases_are_fine():
    data = load("base: &b {run: make, inputs: [src/]}\nsteps:\n  a: *b\n  c: *b\n").data
    assert data["steps"]["a"] == data["steps"]["c"] == {"run": "make", "inputs": ["src/"]}
    assert data["steps"]["a"] is not data["steps"]["c"]  # each use is its own copy


def test_recursive_alias():
    e = error_of("a: &a [1, *a]\n")
    assert e.message == "a YAML alias refers to a value that contains it"


def test_merge_keys_are_refused():
    e = error_of("b: &b {run: x}\nsteps:\n  a:\n    <<: *b\n")
    assert "merge keys" in e.message
    assert e.location.line == 4


def test_non_string_keys_are_refused():
    e = error_of("? [a, b]\n: 1\n")
    assert e.message == "a key must be a plain string"


def test_non_utf8():
    e = error_of(b"amelia: 1\nname: caf\xe9\n")
    assert e.message == "file is not UTF-8: byte 0xe9 at offset 19"
    assert (e.location.line, e.location.col) == (2, 10)


def test_empty_file_and_comments_only():
    assert load("").data == {}
    assert load("# nothing here\n\n").data == {}


def test_top_level_list_is_data():
    assert load("- a\n- b\n").data == ["a", "b"]


def test_scalars_keep_their_core_types():
    data = load("i: 3\nf: 1.5\nb: true\nn: null\ns: '3'\nt: ~\nyes_: yes\n").data
    # YAML 1.1, as PyYAML reads it: yes is a boolean
    assert data == {"i": 3, "f": 1.5, "b": True, "n": None, "s": "3", "t": None, "yes_": True}


def test_dates_and_binary_are_kept_as_text():
    data = load("d: 2024-05-01\nts: 2024-05-01T10:00:00Z\nbin: !!binary aGk=\n").data
    assert data == {"d": "2024-05-01", "ts": "2024-05-01T10:00:00Z", "bin": "aGk="}


def test_syntax_error_is_located():
    e = error_of("amelia: 1\nsteps:\n  a:\n    run: x\n   needs: b\n")
    assert e.message.startswith("invalid YAML: did not find expected key")
    assert "block mapping that starts at line 3" in e.message
    assert (e.location.line, e.location.col) == (5, 4)
    assert e.location.snippet == "   needs: b"


def test_unclosed_quote_points_at_the_quote():
    e = error_of("a: 1\nb: 'open\nc: 2\n")
    assert (e.location.line, e.location.col) == (2, 4)
    assert "quoted scalar that starts here" in e.message
    assert e.hint == "close the quote"


def test_unclosed_bracket_points_at_the_bracket():
    e = error_of("a: 1\nb: {x: 1\n")
    assert (e.location.line, e.location.col) == (2, 4)
    assert e.hint == "close the bracket"


def test_tab_indentation_hint():
    e = error_of("a:\n\tb: 1\n")
    assert e.hint == "YAML does not allow tabs for indentation; use spaces"


def test_colon_in_a_plain_value_hint():
    e = error_of("steps:\n  a:\n    run: echo key: value\n")
    assert (e.location.line, e.location.col) == (3, 18)
    assert "quotes" in e.hint


def test_long_lines_are_cut_in_snippets():
    long_line = "x: [" + "1, " * 200 + "]"
    source = load(long_line + "\n").source
    loc = source.locate(("x", 0))
    assert loc.snippet.endswith(" ...") and len(loc.snippet) == loader.MAX_SNIPPET + 4
    assert loader.snippet_of([long_line], 1, 500) == ""
    assert loader.snippet_of(["short"], 1, 1) == "short"
    assert loader.snippet_of(["short"], 2, 1) == ""


@pytest.mark.parametrize("text, tag", [
    ("a: !!python/object/apply:os.system ['echo hi']\n", "!!python/object/apply:os.system"),
    ("a: !!python/name:os.system x\n", "!!python/name:os.system"),
    ("a: !custom 1\n", "!custom"),
    ("a: !!set {x, y}\n", "!!set"),
])
def test_unsupported_tags_are_refused(text, tag):
    e = error_of(text)
    assert e.message == f"unsupported YAML tag '{tag}'"
    assert (e.location.line, e.location.col, e.location.path) == (1, 4, "a")


def test_core_tags_work():
    assert load("a: !!str 3\nb: !!int '4'\n").data == {"a": "3", "b": 4}


def test_bad_value_for_a_tag_is_an_error_not_a_crash():
    e = error_of("a: !!float x\n")
    assert e.message.startswith("invalid value for !!float")


def test_an_impossible_date_is_just_text():
    assert load("v: 2001-13-45\n").data == {"v": "2001-13-45"}


# -- characters no value can hold (issue 10) ---------------------------------------

@pytest.mark.parametrize("raw, line, col, code", [
    (b"a: 1\nb: x\x01y\n", 2, 5, "U+0001"),
    ("a: 1\nb: \u00e9\u00e9\x07\n".encode(), 2, 6, "U+0007"),  # columns in characters, not bytes
    (b"a: 1\nb: x\x0cy\n", 2, 5, "U+000C"),  # a form feed: str.splitlines would break the line
    (b"a: 1\n\x7f\n", 2, 1, "U+007F"),
])
def test_a_control_character_is_located(raw, line, col, code):
    e = error_of(raw)
    assert e.message == f"invalid YAML: control character {code} is not allowed"
    assert (e.location.line, e.location.col) == (line, col)
    assert all(ord(c) >= 0x20 for c in e.location.snippet)  # shown as a symbol, never raw
    assert "double quotes" in e.hint


def test_a_control_character_is_located_by_the_pure_python_reader_too(monkeypatch):
    import yaml

    monkeypatch.delattr(yaml, "CSafeLoader")
    e = error_of("a: 1\nb: \u00e9x\x01\n".encode())
    assert (e.location.line, e.location.col) == (2, 6)


@pytest.mark.parametrize("text, path", [
    ('a: ["x\\0y"]\n', "a[0]"),
    ('a: {b: "\\0"}\n', "a.b"),
    ('"k\\0": 1\n', ""),
])
def test_a_nul_byte_is_an_error_at_the_value(text, path):
    e = error_of(text)
    assert "NUL byte" in e.message and e.location.path == path and e.location.line == 1


def test_aliases_are_measured_whenever_an_anchor_may_be_there():
    """The measuring pass is skipped only for text with no anchor: `&&` or `2>&1` in a
    command do not hide one, and a bomb is still refused."""
    assert load("a: x && y\nb: echo 2>&1\n").data == {"a": "x && y", "b": "echo 2>&1"}
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg"))
    e = error_of("cmd: x && y\n" + bomb)
    assert "through YAML aliases" in e.message


def test_the_api_reads_no_more_of_a_pipeline_file_than_the_loader_takes():
    """api keeps its own copy of the limit (the no-op path imports no loader): if they
    drifted, a larger file would be cut short and parsed."""
    from amelia import api

    assert api.MAX_PIPELINE_BYTES == loader.MAX_FILE_BYTES
