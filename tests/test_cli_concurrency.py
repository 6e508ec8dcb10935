"""Parallel steps, join edges, failure isolation, the project lock, and kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def _stamps(project, name):
    start, end = project.read(f"build/{name}.t").split()
    return float(start), float(end)


STAMP = "mkdir -p build && s=$(date +%s.%N) && sleep {secs} && echo $s $(date +%s.%N) > build/{name}.t"


def test_independent_steps_overlap(project):
    project.pipeline(f"""\
        amelia: 1
        steps:
          left:
            run: {STAMP.format(secs=1, name="left")}
            output: build/left.t
          right:
            run: {STAMP.format(secs=1, name="right")}
            output: build/right.t
        """)
    project.run("run", "--jobs", "2", check=0)
    l0, l1 = _stamps(project, "left")
    r0, r1 = _stamps(project, "right")
    assert l0 < r1 and r0 < l1, "the two steps did not run at the same time"


def test_jobs_1_runs_one_at_a_time(project):
    project.pipeline(f"""\
        amelia: 1
        steps:
          left:
            run: {STAMP.format(secs=0.3, name="left")}
            output: build/left.t
          right:
            run: {STAMP.format(secs=0.3, name="right")}
            output: build/right.t
        """)
    project.run("run", "-j", "1", check=0)
    l0, l1 = _stamps(project, "left")
    r0, r1 = _stamps(project, "right")
    assert l1 <= r0 or r1 <= l0


def test_join_runs_once_after_all_upstreams(project):
    project.pipeline(f"""\
        amelia: 1
        steps:
          a:
            run: mkdir -p build && echo a > build/a.txt
            output: build/a.txt
          fast:
            run: {STAMP.format(secs=0.1, name="fast")}
            inputs: [build/a.txt]
            output: build/fast.t
          slow1:
            run: {STAMP.format(secs=0.4, name="slow1")}
            output: build/slow1.t
          slow2:
            run: {STAMP.format(secs=0.2, name="slow2")}
            inputs: [build/slow1.t]
            output: build/slow2.t
          join:
            run: echo x >> build/join.count && {STAMP.format(secs=0, name="join")}
            inputs: [build/fast.t, build/slow2.t]
            needs: [a]
            output: build/join.t
        """)
    project.run("run", check=0)
    assert project.read("build/join.count") == "x\n"
    j0, _ = _stamps(project, "join")
    assert j0 >= _stamps(project, "slow2")[1] and j0 >= _stamps(project, "fast")[1]


def test_failure_stops_dependents_and_other_branches_finish(project):
    project.pipeline("""\
        amelia: 1
        steps:
          broken:
            run: echo "about to fail"; exit 7
            inputs: [flag.txt]
          after:
            run: echo never > after.txt
            needs: [broken]
          independent:
            run: sleep 0.3 && mkdir -p build && echo ok > build/ind.txt
            output: build/ind.txt
        """)
    project.write("flag.txt", "1")
    r = project.run("run")
    assert r.returncode == 1
    assert "FAILED  broken" in r.stdout and "command exited with code 7" in r.stdout
    assert "| about to fail" in r.stdout
    assert "skipped after" in r.stdout and "upstream broken failed" in r.stdout
    assert project.read("build/ind.txt") == "ok\n"
    assert not project.exists("after.txt")
    # Fixed: the rerun continues from the cache.
    project.pipeline(project.read("amelia.yaml").replace('exit 7', 'true'))
    r = project.run("run", check=0)
    assert "2 ran, 1 cached" in r.stdout


def _wait_for(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _start(project, *args):
    return subprocess.Popen([sys.executable, "-m", "amelia", *args], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SLOW = """\
amelia: 1
steps:
  quick:
    run: mkdir -p build && echo q > build/quick.txt
    output: build/quick.txt
  slow:
    run: touch started && sleep {secs} && echo s > build/slow.txt
    inputs: [build/quick.txt]
    output: build/slow.txt
"""


def test_second_run_gets_the_lock_error_at_once(project):
    project.pipeline(SLOW.format(secs=3))
    first = _start(project, "run")
    try:
        _wait_for(project.root / "started")
        t = time.monotonic()
        r = project.run("run")
        assert time.monotonic() - t < 2
        assert r.returncode == 4
        assert f"error: another amelia process (pid {first.pid}) is running in this project" in r.stderr
        assert "--wait" in r.stderr
        # --wait queues behind the first run and then finds everything cached.
        r = project.run("run", "--wait", check=0)
        assert "0 ran, 2 cached" in r.stdout
    finally:
        first.wait(timeout=30)
    assert first.returncode == 0


def test_kill_9_loses_only_the_running_step(project):
    project.pipeline(SLOW.format(secs=30))
    victim = _start(project, "run")
    _wait_for(project.root / "started")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    project.pipeline(SLOW.format(secs=0))  # quicker now: the finished step stays cached
    r = project.run("run", check=0)
    assert "1 ran, 1 cached" in r.stdout
    assert "run     slow" in r.stdout
    assert project.read("build/slow.txt") == "s\n"


def test_kill_9_then_rerun_same_definition(project):
    """The killed step re-runs as it was; nothing it half-did is taken as done."""
    project.pipeline(SLOW.format(secs=5))
    victim = _start(project, "run")
    _wait_for(project.root / "started")
    # quick's record is saved by the group commit a moment after it ran (syncfs first,
    # slower on a busy disk): wait for it, as the test is about the step still running.
    for _ in range(40):
        if "cached  quick" in project.run("plan").stdout:
            break
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    # The orphaned `sleep` may still finish and write build/slow.txt: no record exists,
    # so the next run must still run the step rather than trust that file.
    r = project.run("run", check=0)
    assert "1 ran, 1 cached" in r.stdout
    runs = json.loads(project.run("runs", "--json", check=0).stdout)
    assert [r["status"] for r in runs] == ["ok", "died"]
    r = project.run("run", check=0)
    assert "0 ran, 2 cached" in r.stdout
    assert project.run("cache", "verify", check=0).stdout.startswith("cache verify:")
