"""`amelia run | plan` end to end in temporary projects: incremental behaviour."""

from __future__ import annotations

import json
import os
import time

import pytest

CHAIN = """\
amelia: 1
name: chain
steps:
  upper:
    run: mkdir -p build && cat in/*.txt | tr a-z A-Z > build/upper.txt && echo x >> .ran-upper
    inputs: ["in/*.txt"]
    output: build/upper.txt
  count:
    run: wc -l < build/upper.txt > build/count.txt && echo x >> .ran-count
    inputs: [build/upper.txt]
    output: build/count.txt
  other:
    run: cp in/other.dat build/other.dat && echo x >> .ran-other
    inputs: [in/other.dat]
    output: build/other.dat
"""


def runs_of(project, step: str) -> int:
    p = project.root / f".ran-{step}"
    return len(p.read_text().splitlines()) if p.exists() else 0


@pytest.fixture
def chain(project):
    project.pipeline(CHAIN)
    project.write("in/a.txt", "hello\n")
    project.write("in/b.txt", "world\n")
    project.write("in/other.dat", "data\n")
    (project.root / "build").mkdir()
    return project


def settle():
    """Let mtimes age past the racy window so the memo is written."""
    time.sleep(0.15)


def test_first_run_runs_everything_then_noop(chain):
    r = chain.run("run", check=0)
    assert "3 ran, 0 cached" in r.stdout
    assert chain.read("build/upper.txt") == "HELLO\nWORLD\n"
    assert chain.read("build/count.txt").strip() == "2"
    settle()
    r = chain.run("run", check=0)
    assert "0 ran, 3 cached" in r.stdout
    assert [runs_of(chain, s) for s in ("upper", "count", "other")] == [1, 1, 1]


def test_touch_without_change_runs_nothing(chain):
    chain.run("run", check=0)
    settle()
    os.utime(chain.root / "in/a.txt")
    r = chain.run("run", check=0)
    assert "0 ran, 3 cached" in r.stdout


def test_edit_runs_only_affected_steps_with_reasons(chain):
    chain.run("run", check=0)
    settle()
    chain.write("in/b.txt", "there\n")
    plan = chain.run("plan", check=0)
    assert "run     upper  input in/b.txt changed" in plan.stdout
    assert "blocked count  after upper" in plan.stdout
    assert "cached  other" in plan.stdout
    r = chain.run("run", check=0)
    assert "1 ran" not in r.stdout and "2 ran, 1 cached" in r.stdout
    assert chain.read("build/upper.txt") == "HELLO\nTHERE\n"
    assert runs_of(chain, "other") == 1


def test_early_cutoff_keeps_dependents_cached(chain):
    chain.run("run", check=0)
    settle()
    chain.write("in/a.txt", "HELLO\n")  # upper's output comes out byte-identical
    r = chain.run("run", check=0)
    assert "1 ran, 2 cached" in r.stdout
    assert "cached  count  upstream re-ran; its outputs are unchanged" in r.stdout
    assert runs_of(chain, "count") == 1


def test_deleted_output_is_restored_without_running(chain):
    chain.run("run", check=0)
    (chain.root / "build/count.txt").unlink()
    r = chain.run("run", check=0)
    assert "restore build/count.txt" in r.stdout
    assert chain.read("build/count.txt").strip() == "2"
    assert runs_of(chain, "count") == 1


def test_edited_output_is_put_back(chain):
    chain.run("run", check=0)
    chain.write("build/other.dat", "tampered\n")
    chain.run("run", check=0)
    assert chain.read("build/other.dat") == "data\n"
    assert runs_of(chain, "other") == 1


def test_new_input_file_matching_glob_reruns(chain):
    chain.run("run", check=0)
    chain.write("in/c.txt", "again\n")
    r = chain.run("plan", check=0)
    assert "input in/c.txt added" in r.stdout


def test_check_exits_3_and_runs_nothing(chain):
    r = chain.run("run", "--check")
    assert r.returncode == 3, r.stderr
    assert "3 steps are not up to date" in r.stderr
    assert not chain.exists("build/upper.txt")
    chain.run("run", check=0)
    chain.run("run", "--check", check=0)


def test_dry_run_runs_nothing(chain):
    r = chain.run("run", "--dry-run", check=0)
    assert "run     upper  new step" in r.stdout
    assert not chain.exists("build/upper.txt")


def test_force_and_force_all(chain):
    chain.run("run", check=0)
    r = chain.run("run", "--force", "other", check=0)
    assert "run     other  forced" in r.stdout
    assert [runs_of(chain, s) for s in ("upper", "count", "other")] == [1, 1, 2]
    chain.run("run", "--force-all", check=0)
    assert [runs_of(chain, s) for s in ("upper", "count", "other")] == [2, 2, 3]


def test_only_runs_step_and_its_upstream(chain):
    r = chain.run("run", "--only", "count", check=0)
    assert "2 ran, 0 cached" in r.stdout
    assert runs_of(chain, "other") == 0


def test_unknown_step_in_force_is_usage_error(chain):
    r = chain.run("run", "--force", "cuont")
    assert r.returncode == 2
    assert "error: unknown step 'cuont'" in r.stderr
    assert "did you mean 'count'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_json_lines(chain):
    r = chain.run("run", "--json", check=0)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("step_completed") == 3
    assert events[-1]["counts"]["ran"] == 3
    plan = json.loads(chain.run("plan", "--json", check=0).stdout)
    assert {s["action"] for s in plan["steps"]} == {"cached"}


def test_param_values_never_become_shell_text(project):
    project.pipeline("""\
        amelia: 1
        params:
          goal: {type: string, default: "x"}
        steps:
          echo:
            run: mkdir -p build && printf '%s' "${{ params.goal }}" > build/goal.txt
            output: build/goal.txt
        """)
    r = project.run("run", "-p", "goal=$(touch PWNED); `touch PWNED2`", check=0)
    assert not project.exists("PWNED") and not project.exists("PWNED2")
    assert project.read("build/goal.txt") == "$(touch PWNED); `touch PWNED2`"
    assert "ran" in r.stdout


def test_param_change_reruns_the_step(project):
    project.pipeline("""\
        amelia: 1
        params:
          n: {type: integer, default: 1}
        steps:
          s:
            run: mkdir -p build && echo ${{ params.n }} > build/n.txt
            output: build/n.txt
        """)
    project.run("run", check=0)
    r = project.run("run", "-p", "n=2", check=0)
    assert "1 ran" in r.stdout and project.read("build/n.txt") == "2\n"
    bad = project.run("run", "-p", "n=two")
    assert bad.returncode == 2 and "param 'n' must be an integer, got 'two'" in bad.stderr


def test_upstream_output_reaches_command_as_env(project):
    project.pipeline("""\
        amelia: 1
        steps:
          a:
            run: |
              mkdir -p build && echo '{"title": "T; rm -rf /"}' > build/a.json
            output: build/a.json
          b:
            run: printf '%s|%s' "${{ steps.a.json.title }}" "$AMELIA_STEP_A_JSON_TITLE" > build/b.txt
            output: build/b.txt
        """)
    project.run("run", check=0)
    assert project.read("build/b.txt") == "T; rm -rf /|T; rm -rf /"


def test_missing_declared_output_fails(project):
    project.pipeline("""\
        amelia: 1
        steps:
          lazy:
            run: "true"
            output: build/never.txt
        """)
    r = project.run("run")
    assert r.returncode == 1
    assert "did not write build/never.txt" in r.stdout


def test_missing_input_is_an_error_before_running(project):
    project.pipeline("""\
        amelia: 1
        steps:
          s:
            run: cat nothere.txt
            inputs: [nothere.txt]
        """)
    r = project.run("run")
    assert r.returncode == 1
    assert "input 'nothere.txt' does not exist and no step writes it" in r.stdout


def test_timeout_kills_the_step(project):
    project.pipeline("""\
        amelia: 1
        steps:
          slow:
            run: sleep 30
            timeout: 0.5
        """)
    t = time.monotonic()
    r = project.run("run")
    assert r.returncode == 1 and "timed out after 0.5s" in r.stdout
    assert time.monotonic() - t < 10


def test_no_pipeline_file(project):
    r = project.run("run")
    assert r.returncode == 2
    assert "error: no amelia.yaml in" in r.stderr


def test_directory_outputs_are_cached_and_restored(project):
    project.pipeline("""\
        amelia: 1
        steps:
          site:
            run: mkdir -p build/site/sub && echo a > build/site/a.txt && echo b > build/site/sub/b.txt
            outputs: [build/site/]
          pack:
            run: ls -R build/site > build/listing.txt
            inputs: [build/site/]
            output: build/listing.txt
        """)
    project.run("run", check=0)
    (project.root / "build/site/sub/b.txt").unlink()
    project.write("build/site/extra.txt", "x")
    r = project.run("run", check=0)
    assert "0 ran, 2 cached" in r.stdout
    assert project.read("build/site/sub/b.txt") == "b\n"
    assert not project.exists("build/site/extra.txt")


MISSING_INPUT = """\
    amelia: 1
    name: demo
    steps:
      a:
        run: cat missing/file.txt > out.txt
        inputs: [README.md, missing/file.txt]
        output: out.txt
      b:
        run: echo b > b.txt
        output: b.txt
    """

MISSING_INPUT_ERROR = """\
amelia.yaml:6:25: error: step 'a' cannot run: input 'missing/file.txt' does not exist and no step writes it
  at steps.a.inputs[1]
   6 |     inputs: [README.md, missing/file.txt]
                               ^
  hint: create the file, fix the path, or add the step that writes it (as its `output`)
"""


@pytest.mark.parametrize("args", [("plan",), ("run", "--dry-run"), ("run", "--check")])
def test_plan_exits_2_naming_a_step_that_cannot_run(project, args):
    project.pipeline(MISSING_INPUT)
    project.write("README.md", "hi")
    r = project.run(*args)
    assert r.returncode == 2
    assert r.stderr == MISSING_INPUT_ERROR
    assert "error   a  input 'missing/file.txt' does not exist and no step writes it" in r.stdout
    assert "amelia: plan for demo: 1 to run, 1 cannot run (1 run, 1 error)" in r.stdout


def test_plan_json_gives_reasons_as_data(project):
    project.pipeline(MISSING_INPUT.replace(", missing/file.txt", "").replace("cat missing/file.txt", "cat README.md"))
    project.write("README.md", "hi")
    project.run("run", check=0)
    project.write("README.md", "changed")
    r = project.run("plan", "--json", check=0)
    steps = {s["step"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["a"]["action"] == "run"
    assert steps["a"]["reasons"] == [{"kind": "input_changed", "subject": "README.md",
                                      "text": "input README.md changed"}]
    assert steps["b"] == {"step": "b", "action": "cached", "reasons": [], "key": steps["b"]["key"],
                          "restore": []}


def test_a_reader_that_leaves_stops_the_printing_not_the_run(project):
    """`amelia run | head -1`: the broken pipe must not stop steps half-way."""
    import subprocess
    import sys

    project.pipeline("""\
amelia: 1
steps:
  a: {run: "sleep 0.3 && echo a > a.txt", output: a.txt}
  b: {run: "sleep 0.3 && cat a.txt > b.txt", inputs: [a.txt], output: b.txt}
  c: {run: "sleep 0.3 && cat b.txt > c.txt", inputs: [b.txt], output: c.txt}
""")
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "run", "--jobs", "1"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert project.read("c.txt") == "a\n"
    runs = json.loads(project.run("runs", "--json", check=0).stdout)
    assert runs[0]["status"] == "ok"
