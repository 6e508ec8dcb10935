"""Run history (`runs`, `show`), the cache commands, logs, --help, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_golden

PIPE = """\
amelia: 1
name: hist
steps:
  a:
    run: mkdir -p build && echo "a says hi" && echo a > build/a.txt
    output: build/a.txt
  b:
    run: cat build/a.txt build/a.txt > build/b.txt
    inputs: [build/a.txt]
    output: build/b.txt
"""


@pytest.fixture
def hist(project):
    project.pipeline(PIPE)
    return project


def test_runs_and_show(hist):
    first = hist.run("run", check=0)
    run_id = first.stdout.strip().rsplit("(run ", 1)[1].rstrip(")")
    second = hist.run("run", check=0).stdout.strip().rsplit("(run ", 1)[1].rstrip(")")
    listing = hist.run("runs", check=0).stdout.splitlines()
    assert listing[0].split() == ["RUN", "STARTED", "STATUS", "TIME", "TOKENS", "IN/OUT", "COST", "STEPS"]
    assert len(listing) == 3 and listing[2].startswith(run_id)
    assert "2 ran" in listing[2] and "2 cached" in listing[1]
    # the shortest prefix that tells it from the second run (two runs in one second share 16
    # characters; their random tails may share more)
    same = next(i for i, (x, y) in enumerate(zip(run_id, second)) if x != y)
    shown = hist.run("show", run_id[:same + 1], check=0).stdout
    assert f"run       {run_id}" in shown and "status    ok" in shown
    assert "ran      a" in shown and "new step" in shown
    last = json.loads(hist.run("show", "last", "--json", check=0).stdout)
    assert [s["status"] for s in last["steps"]] == ["cached", "cached"]
    rows = json.loads(hist.run("runs", "--json", check=0).stdout)
    assert rows[1]["id"] == run_id and rows[1]["summary"]["counts"]["ran"] == 2


def test_show_unknown_run(hist):
    hist.run("run", check=0)
    r = hist.run("show", "nope")
    assert r.returncode == 2 and "error: no run 'nope'" in r.stderr


def test_history_before_any_run(hist):
    r = hist.run("runs")
    assert r.returncode == 2 and "no runs yet in this project" in r.stderr


def test_step_output_goes_to_the_log(hist):
    out = hist.run("run", check=0).stdout
    run_id = out.strip().rsplit("(run ", 1)[1].rstrip(")")
    logs = hist.root / ".amelia" / "logs" / run_id
    assert (logs / "a.log").read_text() == "a says hi\n"
    assert "ok      a" in (logs / "run.log").read_text()


def test_cache_verify_detects_a_flipped_byte(hist):
    hist.run("run", check=0)
    assert "0 corrupt" in hist.run("cache", "verify", check=0).stdout
    objects = sorted(p for p in (hist.root / ".amelia/objects").rglob("*")
                     if p.is_file() and p.parent.name != "tmp")
    victim = objects[0]
    data = bytearray(victim.read_bytes())
    data[0] ^= 0x01
    victim.write_bytes(bytes(data))
    r = hist.run("cache", "verify")
    assert r.returncode == 4
    assert "1 corrupt (removed)" in r.stdout and victim.name in r.stdout
    # The corrupt object is gone: losing an output now re-runs its step, never restores junk.
    for rel in ("build/a.txt", "build/b.txt"):
        (hist.root / rel).unlink()
    hist.run("run", check=0)
    assert hist.read("build/b.txt") == "a\na\n"


def test_cache_clear_and_gc(hist):
    hist.run("run", check=0)
    hist.run("cache", "clear", "--yes", check=0)
    assert "2 ran" in hist.run("run", check=0).stdout
    hist.pipeline(PIPE.replace("a says hi", "a says hello"))
    hist.run("run", check=0)
    r = hist.run("cache", "gc", "--keep", "1", check=0)
    assert "1 records dropped" in r.stdout


def test_help_and_version(project):
    r = project.run("--help", check=0)
    assert "Make for LLM agents" in r.stdout
    for cmd in ("run", "plan", "validate", "graph", "runs", "show", "cache", "schema"):
        assert cmd in r.stdout
    assert "--check" in project.run("run", "--help", check=0).stdout
    assert "0.1.0" in project.run("--version", check=0).stdout


def test_ctrl_c_exits_130_and_keeps_finished_steps(project):
    project.pipeline("""\
        amelia: 1
        steps:
          quick:
            run: mkdir -p build && echo q > build/q.txt
            output: build/q.txt
          slow:
            run: touch started && sleep 30 && echo s > build/s.txt
            inputs: [build/q.txt]
            output: build/s.txt
        """)
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "run"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (project.root / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - t < 10
    assert "Traceback" not in err
    r = project.run("plan", check=0)
    assert "cached  quick" in r.stdout and "run     slow" in r.stdout


# -- bad numbers on the command line ---------------------------------------------------------

GOLDEN = Path(__file__).resolve().parent / "store" / "golden"


@pytest.mark.parametrize("keep", ["-1", "0"])
def test_gc_keep_below_1_is_a_usage_error_and_drops_nothing(hist, keep):
    hist.run("run", check=0)
    r = hist.run("cache", "gc", "--keep", keep)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert_golden(r.stderr, GOLDEN / f"gc_keep_{keep}.txt")
    assert "0 missing" in hist.run("cache", "verify", check=0).stdout
    assert "2 cached" in hist.run("run", check=0).stdout


def test_runs_n_huge_lists_them_all_and_negative_is_a_usage_error(hist):
    hist.run("run", check=0)
    hist.run("run", check=0)
    r = hist.run("runs", "-n", "100000000000000000000", check=0)
    assert len(r.stdout.splitlines()) == 3  # the header and both runs
    assert len(hist.run("runs", "-n", "1", check=0).stdout.splitlines()) == 2
    r = hist.run("runs", "-n", "-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert_golden(r.stderr, GOLDEN / "runs_n_negative.txt")
