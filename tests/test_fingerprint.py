"""amelia.fingerprint: the stat → hash memo, per-step fingerprints and the cache key."""

from __future__ import annotations

import os
import time

import pytest

from amelia import fingerprint as fpmod
from amelia.fingerprint import RACY_NS, FileStates, Fingerprint, fingerprint
from amelia.keys import cache_key, key_material
from amelia.spec import CACHE_FORMAT_VERSION, Pipeline, Step, TemplateVar, canonical_json
from amelia.store.objects import ObjectStore, hash_bytes, hash_file, tree_digest


def write(root, rel: str, data: str | bytes = "x", age: float | None = 10.0):
    """Write a file; `age` seconds in the past for its mtime (None: leave it just written)."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        p.write_text(data)
    else:
        p.write_bytes(data)
    if age is not None:
        set_age(p, age)
    return p


def set_age(p, age: float, whole_seconds: bool = False) -> None:
    ns = time.time_ns() - int(age * 1e9)
    if whole_seconds:
        ns -= ns % 1_000_000_000
    else:
        ns -= ns % 1_000_000_000 - 123_456_789  # a sub-second part, as fine clocks give
    os.utime(p, ns=(ns, ns))


def mkstep(sid: str, inputs=(), outputs=(), data_needs=(), needs=None, definition=None, vars=(),
           kind="run", description="") -> Step:
    if definition is None:
        definition = canonical_json({"run": f"make {sid}", "inputs": list(inputs), "outputs": list(outputs)})
    return Step(id=sid, kind=kind, definition=definition, inputs=tuple(inputs), outputs=tuple(outputs),
                needs=tuple(sorted(needs if needs is not None else data_needs)),
                data_needs=tuple(sorted(data_needs)), vars=tuple(vars), description=description)


def mkpipeline(root, *steps) -> Pipeline:
    return Pipeline(name="t", file="amelia.yaml", root=str(root), digest="d", params={}, env_names=(),
                    steps=tuple(steps))


@pytest.fixture
def count_hashes(monkeypatch):
    """Count (and record) the files FileStates actually reads."""
    calls = []

    def counting(path):
        calls.append(path)
        return hash_file(path)

    monkeypatch.setattr(fpmod, "hash_file", counting)
    return calls


# -- FileStates -----------------------------------------------------------------------

def test_hash_is_content_hash_and_missing_is_none(tmp_path):
    write(tmp_path, "a.txt", "hello")
    states = FileStates(str(tmp_path), {})
    assert states.hash("a.txt") == hash_bytes(b"hello")
    assert states.hash("nope.txt") is None
    assert states.hash("a.txt/below") is None


def test_memo_hit_does_not_read_the_file(tmp_path, count_hashes):
    write(tmp_path, "a.txt", "hello")
    first = FileStates(str(tmp_path), {})
    digest = first.hash("a.txt")
    assert len(count_hashes) == 1
    assert set(first.updates) == {"a.txt"}
    # the next run starts from what was saved
    second = FileStates(str(tmp_path), dict(first.updates))
    assert second.hash("a.txt") == digest
    assert second.hash("a.txt") == digest
    assert len(count_hashes) == 1
    assert second.updates == {}  # nothing new to save


def test_memo_hit_trusts_the_stat_not_the_bytes(tmp_path, monkeypatch):
    p = write(tmp_path, "a.txt", "hello")
    st = os.stat(p)
    memo = {"a.txt": (st.st_size, st.st_mtime_ns, st.st_ino, "memoized-hash")}
    monkeypatch.setattr(fpmod, "hash_file", lambda path: pytest.fail(f"read {path}"))
    assert FileStates(str(tmp_path), memo).hash("a.txt") == "memoized-hash"


def test_touch_rehashes_once_and_hash_is_unchanged(tmp_path, count_hashes):
    p = write(tmp_path, "a.txt", "same bytes", age=20)
    first = FileStates(str(tmp_path), {})
    digest = first.hash("a.txt")
    memo = dict(first.updates)
    set_age(p, 5)  # touched: same bytes, new mtime
    second = FileStates(str(tmp_path), memo)
    assert second.hash("a.txt") == digest
    assert second.hash("a.txt") == digest
    assert len(count_hashes) == 2  # once per run: the touch cost one re-read
    assert second.updates["a.txt"][1] == os.stat(p).st_mtime_ns
    third = FileStates(str(tmp_path), {**memo, **second.updates})
    assert third.hash("a.txt") == digest
    assert len(count_hashes) == 2


def test_changed_content_same_size_and_mtime_new_inode_is_rehashed(tmp_path, count_hashes):
    p = write(tmp_path, "a.txt", "aaaa")
    st = os.stat(p)
    memo = {"a.txt": (st.st_size, st.st_mtime_ns, st.st_ino, hash_bytes(b"aaaa"))}
    tmp = write(tmp_path, "tmp", "bbbb")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, p)  # an editor's atomic save: new inode
    assert os.stat(p).st_mtime_ns == st.st_mtime_ns
    assert FileStates(str(tmp_path), memo).hash("a.txt") == hash_bytes(b"bbbb")
    assert len(count_hashes) == 1


def test_changed_size_is_rehashed(tmp_path):
    p = write(tmp_path, "a.txt", "a")
    st = os.stat(p)
    memo = {"a.txt": (st.st_size + 1, st.st_mtime_ns, st.st_ino, "stale")}
    assert FileStates(str(tmp_path), memo).hash("a.txt") == hash_bytes(b"a")


def test_just_modified_file_is_not_saved(tmp_path):
    write(tmp_path, "fresh.txt", "new", age=None)  # mtime: now
    write(tmp_path, "old.txt", "old", age=10)
    states = FileStates(str(tmp_path), {})
    assert states.hash("fresh.txt") == hash_bytes(b"new")
    assert states.hash("old.txt") == hash_bytes(b"old")
    assert "fresh.txt" not in states.updates
    assert "old.txt" in states.updates
    assert RACY_NS <= 1_000_000_000


def test_racy_check_uses_the_time_of_reading(tmp_path):
    """A long-lived FileStates (one run) must not memoize files written after it began."""
    states = FileStates(str(tmp_path), {})
    states.now_ns -= 3_600 * 10**9  # as if the run began an hour ago
    write(tmp_path, "late.txt", "x", age=None)
    states.hash("late.txt")
    assert "late.txt" not in states.updates
    write(tmp_path, "older.txt", "x", age=10)
    states.hash("older.txt")
    assert "older.txt" in states.updates


def test_whole_second_mtimes_get_a_wider_racy_window(tmp_path):
    """On a filesystem with 1 s timestamps, a change in the same second keeps the mtime."""
    p = write(tmp_path, "coarse.txt", "x")
    set_age(p, 0.5, whole_seconds=True)
    states = FileStates(str(tmp_path), {})
    states.hash("coarse.txt")
    assert "coarse.txt" not in states.updates
    set_age(p, 10, whole_seconds=True)
    states = FileStates(str(tmp_path), {})
    states.hash("coarse.txt")
    assert "coarse.txt" in states.updates


def test_forget_drops_the_memo_entry(tmp_path, count_hashes):
    write(tmp_path, "a.txt")
    states = FileStates(str(tmp_path), {})
    states.hash("a.txt")
    states.forget("a.txt")
    states.forget("never-seen")
    states.hash("a.txt")
    assert len(count_hashes) == 2


def test_directory_hash_equals_put_tree(tmp_path):
    root = tmp_path / "root"
    write(root, "out/a.txt", "a")
    write(root, "out/sub/b.txt", "b")
    write(root, "out/sub/deeper/c.bin", b"\x00\x01")
    write(root, "out/.git/HEAD", "ignored")  # .git and .amelia are never part of a tree
    os.symlink("gone", root / "out" / "dangling")  # neither are dangling links
    states = FileStates(str(root), {})
    digest = states.hash("out")
    assert digest.startswith("tree-")
    store = ObjectStore(str(tmp_path / "objects"))
    assert store.put_tree(str(root / "out")) == digest
    assert states.tree("out/") == digest
    assert digest == tree_digest({"a.txt": hash_bytes(b"a"), "sub/b.txt": hash_bytes(b"b"),
                                  "sub/deeper/c.bin": hash_bytes(b"\x00\x01")})


def test_directory_hash_memoizes_its_files(tmp_path, count_hashes):
    write(tmp_path, "out/a.txt", "a")
    write(tmp_path, "out/b.txt", "b")
    first = FileStates(str(tmp_path), {})
    d1 = first.hash("out")
    assert set(first.updates) == {"out/a.txt", "out/b.txt"}
    second = FileStates(str(tmp_path), dict(first.updates))
    assert second.hash("out") == d1
    assert len(count_hashes) == 2


def test_directory_hash_changes_with_content_and_names(tmp_path):
    write(tmp_path, "out/a.txt", "a")
    d1 = FileStates(str(tmp_path), {}).hash("out")
    write(tmp_path, "out/a.txt", "A")
    d2 = FileStates(str(tmp_path), {}).hash("out")
    os.rename(tmp_path / "out/a.txt", tmp_path / "out/b.txt")
    d3 = FileStates(str(tmp_path), {}).hash("out")
    assert len({d1, d2, d3}) == 3


def test_empty_and_missing_directories(tmp_path):
    (tmp_path / "empty").mkdir()
    states = FileStates(str(tmp_path), {})
    assert states.hash("empty") == tree_digest({})
    assert ObjectStore(str(tmp_path / ".objects")).put_tree(str(tmp_path / "empty")) == tree_digest({})
    assert states.tree("missing") is None


# -- fingerprint -------------------------------------------------------------------------

def test_fingerprint_hashes_inputs_and_outputs(tmp_path):
    write(tmp_path, "in/a.txt", "a")
    write(tmp_path, "in/b.txt", "b")
    write(tmp_path, "conf.ini", "c")
    write(tmp_path, "out.txt", "o")
    step = mkstep("s", inputs=("in/*.txt", "conf.ini"), outputs=("out.txt", "gen/"))
    fp = fingerprint(step, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, step))
    assert fp.inputs == {"in/a.txt": hash_bytes(b"a"), "in/b.txt": hash_bytes(b"b"),
                         "conf.ini": hash_bytes(b"c")}
    assert fp.produced_by == {}
    assert fp.outputs == {"out.txt": hash_bytes(b"o"), "gen/": None}
    assert fp.missing == () and fp.error == ""


def test_fingerprint_marks_upstream_outputs_as_produced(tmp_path):
    write(tmp_path, "src.txt", "s")
    write(tmp_path, "build/one.txt", "old bytes on disk")  # on disk: still the producer's to give
    up = mkstep("up", inputs=("src.txt",), outputs=("build/one.txt", "build/two.txt"))
    down = mkstep("down", inputs=("build/*.txt", "src.txt"), data_needs=("up",))
    p = mkpipeline(tmp_path, up, down)
    fp = fingerprint(down, FileStates(str(tmp_path), {}), p)
    # build/two.txt is not on disk yet, but the glob will read it once `up` ran
    assert fp.inputs == {"build/one.txt": None, "build/two.txt": None, "src.txt": hash_bytes(b"s")}
    assert fp.produced_by == {"build/one.txt": "up", "build/two.txt": "up"}
    assert fp.missing == ()


def test_fingerprint_produced_directory_is_one_input(tmp_path):
    write(tmp_path, "gen/a.md", "a")
    write(tmp_path, "gen/sub/b.md", "b")
    write(tmp_path, "notes.md", "n")
    up = mkstep("up", outputs=("gen/",))
    down = mkstep("down", inputs=("**/*.md",), data_needs=("up",))
    fp = fingerprint(down, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, up, down))
    assert fp.inputs == {"gen/": None, "notes.md": hash_bytes(b"n")}
    assert fp.produced_by == {"gen/": "up"}


def test_fingerprint_literal_produced_input_missing_on_disk_is_not_missing(tmp_path):
    up = mkstep("up", outputs=("a.txt",))
    down = mkstep("down", inputs=("a.txt",), data_needs=("up",))
    fp = fingerprint(down, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, up, down))
    assert fp.inputs == {"a.txt": None} and fp.missing == ()


def test_fingerprint_missing_literal_input(tmp_path):
    step = mkstep("s", inputs=("nope.txt", "gone/", "*.none"))
    fp = fingerprint(step, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, step))
    assert fp.missing == ("nope.txt", "gone/")  # a glob that matches nothing is fine


def test_fingerprint_empty_directory_input_is_not_missing(tmp_path):
    (tmp_path / "data").mkdir()
    step = mkstep("s", inputs=("data",))
    fp = fingerprint(step, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, step))
    assert fp.missing == () and fp.inputs == {}


def test_fingerprint_symlink_escape_is_an_error(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    write(tmp_path, "secret.txt")
    os.symlink(tmp_path / "secret.txt", root / "s.txt")
    step = mkstep("s", inputs=("*.txt",))
    fp = fingerprint(step, FileStates(str(root), {}), mkpipeline(root, step))
    assert "outside the project root" in fp.error


def test_fingerprint_directory_output_hash(tmp_path):
    write(tmp_path, "site/index.html", "<p>")
    step = mkstep("s", outputs=("site/",))
    fp = fingerprint(step, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, step))
    assert fp.outputs == {"site/": tree_digest({"index.html": hash_bytes(b"<p>")})}


# -- key material and cache key -------------------------------------------------------

def key_of(step, fp, upstream=None, pipeline=None):
    pipeline = pipeline or mkpipeline("/nowhere", step)
    return cache_key(key_material(pipeline, step, fp, upstream or {}))


def test_key_material_contents():
    step = mkstep("s", inputs=("a.txt", "b.txt"), data_needs=("up",),
                  vars=(TemplateVar("env.TOKEN_NAME", "AMELIA_ENV_TOKEN_NAME"),
                        TemplateVar("params.goal", "AMELIA_PARAM_GOAL"),
                        TemplateVar("env.A_FIRST", "AMELIA_ENV_A_FIRST")))
    fp = Fingerprint({"a.txt": "h-a", "b.txt": None}, {"b.txt": "up"})
    upstream = {"up": {"b.txt": "h-b", "c.txt": "h-c"}}
    m = key_material(mkpipeline("/x", step), step, fp, upstream)
    assert m == {
        "v": CACHE_FORMAT_VERSION,
        "kind": "run",
        "definition": step.definition,
        "inputs": {"a.txt": "h-a", "b.txt": "h-b"},  # produced inputs take the producer's hash
        "upstream": upstream,
        "env_names": ["AMELIA_ENV_A_FIRST", "AMELIA_ENV_TOKEN_NAME"],
    }


def test_cache_key_is_deterministic_and_order_free():
    step = mkstep("s", inputs=("a", "b"))
    k1 = key_of(step, Fingerprint({"a": "1", "b": "2"}))
    k2 = key_of(step, Fingerprint({"b": "2", "a": "1"}))
    assert k1 == k2 and len(k1) == 64
    assert key_of(step, Fingerprint({"a": "1", "b": "2"})) == k1


def test_cache_key_changes_with_what_matters():
    base = mkstep("s", inputs=("a",), data_needs=("up",))
    fp = Fingerprint({"a": "1", "u": None}, {"u": "up"})
    up = {"up": {"u": "h1"}}
    k = key_of(base, fp, up)
    other_def = mkstep("s", inputs=("a",), data_needs=("up",), definition='{"run":"other"}')
    assert key_of(other_def, fp, up) != k
    assert key_of(mkstep("s", inputs=("a",), data_needs=("up",), kind="agent"), fp, up) != k
    assert key_of(base, Fingerprint({"a": "2", "u": None}, {"u": "up"}), up) != k  # input content
    assert key_of(base, Fingerprint({"a": "1", "b": "1", "u": None}, {"u": "up"}), up) != k  # new input
    assert key_of(base, fp, {"up": {"u": "h2"}}) != k  # upstream output
    assert key_of(base, fp, {"up": {"u": "h1", "extra": "x"}}) != k  # any upstream output
    with_env = mkstep("s", inputs=("a",), data_needs=("up",), vars=(TemplateVar("env.X", "AMELIA_ENV_X"),))
    assert key_of(with_env, fp, up) != k


def test_cache_key_ignores_step_id_description_and_needs_only_edges():
    fp = Fingerprint({"a": "1"})
    a = mkstep("a", inputs=("a",), definition='{"run":"x"}')
    b = mkstep("b", inputs=("a",), definition='{"run":"x"}', description="words", needs=("z",))
    assert key_of(a, fp) == key_of(b, fp)


def test_cache_key_never_holds_an_env_value(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "sk-very-secret")
    step = mkstep("s", vars=(TemplateVar("env.SECRET_TOKEN", "AMELIA_ENV_SECRET_TOKEN"),))
    m = key_material(mkpipeline("/x", step), step, Fingerprint(), {})
    assert "sk-very-secret" not in canonical_json(m)
    monkeypatch.setenv("SECRET_TOKEN", "another")
    assert cache_key(key_material(mkpipeline("/x", step), step, Fingerprint(), {})) == cache_key(m)


# -- through the resolver: cosmetic fields stay out of the key ------------------------------

PIPE = """\
amelia: 1
name: {name}
steps:
  make:
    run: cat in.txt > out.txt{extra}
    inputs: [in.txt]
    output: out.txt
  use:
    run: wc -c out.txt
    inputs: [out.txt]
"""


def keys_for(tmp_path, name="p", extra=""):
    from amelia.api import resolve_file

    f = tmp_path / "amelia.yaml"
    f.write_text(PIPE.format(name=name, extra=extra))
    pipeline = resolve_file(str(f))
    states = FileStates(str(tmp_path), {})
    make = pipeline.step("make")
    m = key_material(pipeline, make, fingerprint(make, states, pipeline), {})
    use = pipeline.step("use")
    fp_use = fingerprint(use, states, pipeline)
    assert fp_use.produced_by == {"out.txt": "make"}
    k_use = cache_key(key_material(pipeline, use, fp_use, {"make": {"out.txt": "h"}}))
    return cache_key(m), k_use


def test_resolved_keys_deterministic_and_cosmetics_excluded(tmp_path):
    write(tmp_path, "in.txt", "hello")
    base = keys_for(tmp_path)
    assert keys_for(tmp_path) == base
    assert keys_for(tmp_path, name="renamed") == base  # the pipeline's name is not the step's
    assert keys_for(tmp_path, extra="\n    description: says what it does") == base
    assert keys_for(tmp_path, extra="\n    timeout: 30") == base
    changed = keys_for(tmp_path, extra=" && true")
    assert changed[0] != base[0]
    assert changed[1] == base[1]  # downstream: only through the upstream hashes it is given
    write(tmp_path, "in.txt", "changed")
    assert keys_for(tmp_path)[0] != base[0]


def test_fingerprint_exclude_leaves_matching_files_out_of_the_inputs(tmp_path):
    """A RAG source's `exclude:` (Step.exclude): excluded files are not inputs, so editing
    one changes nothing of the step's key."""
    write(tmp_path, "docs/a.md", "a")
    write(tmp_path, "docs/drafts/b.md", "b")
    write(tmp_path, "docs/c.txt", "c")
    step = Step(id="source:docs", kind="index", definition="{}", inputs=("docs/**",),
                outputs=(".amelia/index/docs.json",), exclude=("docs/drafts/**", "**/*.txt"))
    p = mkpipeline(tmp_path, step)
    fp = fingerprint(step, FileStates(str(tmp_path), {}), p)
    assert fp.inputs == {"docs/a.md": hash_bytes(b"a")}
    assert fp.missing == () and fp.error == ""
    key = cache_key(key_material(p, step, fp, {}))
    write(tmp_path, "docs/drafts/b.md", "edited")
    again = fingerprint(step, FileStates(str(tmp_path), {}), p)
    assert cache_key(key_material(p, step, again, {})) == key
    # without the exclusion, the same glob reads all three
    plain = Step(id="s", kind="index", definition="{}", inputs=("docs/**",))
    assert set(fingerprint(plain, FileStates(str(tmp_path), {}), mkpipeline(tmp_path, plain)).inputs) == {
        "docs/a.md", "docs/drafts/b.md", "docs/c.txt"}
