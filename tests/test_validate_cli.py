"""`amelia validate` on bad files: exact messages (golden files), exit code 2, no traceback.

Each tests/cases/invalid_<kind>/ (and unavailable_<key>/, a key the schema takes but
this version does not implement) holds an amelia.yaml and expected.txt, the exact
stderr of `amelia validate`. Regenerate with AMELIA_UPDATE_GOLDEN=1, then read the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from conftest import CASES, assert_golden

INVALID = sorted(p.name for pattern in ("invalid_*", "unavailable_*") for p in CASES.glob(pattern)
                 if (p / "amelia.yaml").exists())
UNAVAILABLE = [name for name in INVALID if name.startswith("unavailable_")]


def _symlink_out(project, tmp_path):
    """shared/ in the project leads outside it (git cannot hold the link portably)."""
    outside = tmp_path / "outside"
    (outside / "lib").mkdir(parents=True)
    (outside / "lib" / "x.c").write_text("int x;\n")
    os.symlink(outside, project.root / "shared")


def _symlinks_inside(project, tmp_path):
    """b/ and c/ are a/ under other names: their outputs are a/'s files."""
    (project.root / "a").mkdir()
    os.symlink("a", project.root / "b")
    os.symlink("a", project.root / "c")


def _vendor_is_lib(project, tmp_path):
    """vendor/ is lib/: an output directory that holds the step's own input."""
    (project.root / "lib").mkdir()
    (project.root / "lib" / "util.js").write_text("export {}\n")
    os.symlink("lib", project.root / "vendor")


def _long_run(project, tmp_path):
    """A 900 KiB command (generated: too big to commit): more than one argument may be."""
    command = "echo " + "x" * (900 * 1024)
    (project.root / "amelia.yaml").write_text(f"amelia: 1\nsteps:\n  big:\n    run: {command}\n")


def _deep_schema(project, tmp_path):
    """A schema file nested 100,000 levels (generated): no RecursionError."""
    (project.root / "schemas").mkdir()
    (project.root / "schemas" / "plan.json").write_text("[" * 100_000 + "]" * 100_000)


SETUP = {"invalid_symlink_escape": _symlink_out,
         "invalid_output_clash_through_symlink": _symlinks_inside,
         "invalid_input_in_output_symlink": _vendor_is_lib,
         "invalid_run_too_long": _long_run,
         "invalid_schema_file_too_deep": _deep_schema}
# Cases with errors located in other files: a prompt file, included recipes.
OTHER_FILES = {"invalid_agent_prompt_file_bad_ref": {"discovery.md"},
               "invalid_include_error_in_recipe": {"review.yaml"},
               "invalid_include_params": {"amelia.yaml", "review.yaml"},
               "invalid_include_cycle": {"b.yaml"}}


def _copy_case(name: str, project, tmp_path) -> None:
    for item in (CASES / name).iterdir():
        if item.name != "expected.txt":
            shutil.copy(item, project.root / item.name)
    if name in SETUP:
        SETUP[name](project, tmp_path)


def test_there_are_cases():
    assert len(INVALID) >= 25


@pytest.mark.parametrize("name", INVALID)
def test_invalid_file(name, project, tmp_path):
    _copy_case(name, project, tmp_path)
    started = time.monotonic()
    proc = project.run("validate")
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert_golden(proc.stderr, CASES / name / "expected.txt")
    assert elapsed < 10  # an alias bomb is refused, not expanded


@pytest.mark.parametrize("name", INVALID)
def test_every_error_line_is_located(name):
    """`FILE:LINE:COL: error:` for each error (file-level problems have no line)."""
    text = (CASES / name / "expected.txt").read_text()
    heads = [line for line in text.splitlines() if ": error: " in line]
    assert heads
    file_level = {"invalid_empty_file"}
    for head in heads:
        where = head.split(": error: ")[0]
        if name in file_level:
            assert where == "amelia.yaml"
        else:
            file, line, col = where.split(":")
            assert file in OTHER_FILES.get(name, {"amelia.yaml"}) and int(line) >= 1 and int(col) >= 1, head


@pytest.mark.parametrize("name", UNAVAILABLE)
def test_unavailable_keys_fail_closed_with_a_hint(name):
    """A key the schema takes but this version does not implement is never ignored."""
    text = (CASES / name / "expected.txt").read_text()
    heads = [line for line in text.splitlines() if ": error: " in line]
    assert any(h.endswith("not available in this version of amelia") for h in heads)
    assert text.count("  hint: ") == len(heads)


def test_several_errors_end_with_a_count():
    text = (CASES / "invalid_many_errors" / "expected.txt").read_text()
    n = text.count(": error: ")
    assert n >= 4
    assert text.endswith(f"{n} errors found\n")


def test_one_error_has_no_count():
    text = (CASES / "invalid_cycle" / "expected.txt").read_text()
    assert "errors found" not in text and "error found" not in text


def test_debug_shows_the_traceback_and_the_message(project):
    _copy_case("invalid_cycle", project, None)
    proc = project.run("--debug", "validate")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.endswith((CASES / "invalid_cycle" / "expected.txt").read_text())


def test_json_error_report(project):
    _copy_case("invalid_typo_step_key", project, None)
    proc = project.run("validate", "--json")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err = json.loads(proc.stderr)["error"]
    assert err["line"] == 7 and err["col"] == 5
    assert err["path"] == "steps.test.neds"
    assert err["hint"] == "did you mean 'needs'?"


def test_json_error_group(project):
    _copy_case("invalid_many_errors", project, None)
    proc = project.run("validate", "--json")
    assert proc.returncode == 2
    errors = json.loads(proc.stderr)["error"]["errors"]
    assert len(errors) == (CASES / "invalid_many_errors" / "expected.txt").read_text().count(": error: ")
    assert [e["line"] for e in errors] == sorted(e["line"] for e in errors)


def test_valid_file(project):
    project.pipeline("""\
        amelia: 1
        steps:
          build: {run: make, output: build/app}
          test: {run: make test, inputs: [build/app]}
        """)
    proc = project.run("validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "amelia.yaml: ok (2 steps)\n"
    assert proc.stderr == ""


def test_missing_file(project):
    proc = project.run("validate", "nope.yaml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("nope.yaml: error: pipeline file not found: nope.yaml")
    assert "Traceback" not in proc.stderr


def test_no_file_in_directory(project):
    proc = project.run("validate")
    assert proc.returncode == 2
    assert "error: no amelia.yaml in" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", ids=["typo", "unknown", "type", "no-equals", "enum"], argvalues=[
    (["-p", "mdoe=slow"], "error: unknown param 'mdoe' given with -p\n  hint: did you mean 'mode'?\n"),
    (["-p", "zzz=1"], "error: unknown param 'zzz' given with -p\n  hint: declared params: n, mode\n"),
    (["-p", "n=three"], "error: param 'n' must be an integer, got 'three'\n"),
    (["-p", "n"], "error: -p takes name=value, got 'n'\n"),
    (["-p", "mode=fsat"], "error: param 'mode' must be one of fast, slow, got 'fsat'\n"
                          "  hint: did you mean 'fast'?\n"),
])
def test_bad_param_overrides_are_usage_errors(project, args, message):
    project.pipeline("""\
        amelia: 1
        params:
          n: {type: integer, default: 1}
          mode: {type: string, enum: [fast, slow], default: fast}
        steps:
          build: {run: make}
        """)
    proc = project.run("validate", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_command_prints_the_schema(project):
    from amelia.schema import load_schema, schema_path

    proc = project.run("schema", check=0)
    with open(schema_path(), encoding="utf-8") as f:
        assert proc.stdout == f.read()
    assert json.loads(proc.stdout) == load_schema()


def test_validate_and_graph_need_no_param_values_but_run_does(project):
    project.pipeline("""\
        amelia: 1
        params:
          goal: {type: string}
        steps:
          a:
            run: echo "${{ params.goal }}"
        """)
    assert project.run("validate", check=0).stdout == "amelia.yaml: ok (1 step)\n"
    assert "a  run" in project.run("graph", check=0).stdout
    r = project.run("run")
    assert r.returncode == 2
    assert r.stderr == ("error: param 'goal' has no default and no value\n"
                        "  hint: pass it: amelia run -p goal=VALUE\n")
