"""Runs stop when told, and steps never outlive the runner (end to end, real processes).

Each long step writes its shell's pid and the pid of its `sleep` child, so the test can
check afterwards that nothing it started is still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

LONG = """\
amelia: 1
name: signals
steps:
  one:
    run: "echo $$ > one.pid; sleep 30 & echo $! > one.child; wait; echo x > one.txt"
    output: one.txt
  two:
    run: "echo $$ > two.pid; sleep 31 & echo $! > two.child; wait; echo x > two.txt"
    output: two.txt
  after:
    run: echo x > after.txt
    inputs: [one.txt]
    output: after.txt
"""


# A step's group is registered with the reaper just after its process starts; under load
# the runner's thread may wait a thread switch (~5 ms) for that while the step already
# runs. A kill -9 inside that window is the one the reaper cannot see
# (docs/architecture.md, "Stopping"); the tests kill after it.
REGISTERED = 0.3


def _start(project, *args, new_group=False):
    return subprocess.Popen([sys.executable, "-m", "amelia", *args], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=new_group)


def _wait_for(project, *names, timeout=20):
    deadline = time.monotonic() + timeout
    while not all((project.root / n).exists() and (project.root / n).read_text().strip() for n in names):
        assert time.monotonic() < deadline, f"{names} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead: it only waits for its parent to read its status
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _pids(project) -> list:
    return [int((project.root / n).read_text()) for n in ("one.pid", "one.child", "two.pid", "two.child")]


def _none_alive(pids, within: float = 4.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_running_steps_at_once(project, sig, code):
    project.pipeline(LONG)
    proc = _start(project, "run", "--jobs", "2")
    _wait_for(project, "one.child", "two.child")
    pids = _pids(project)
    t = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    took = time.monotonic() - t
    assert proc.returncode == code, err
    assert took < 3.0, f"exit took {took:.1f}s"
    assert _none_alive(pids, within=1.0), "a step's process outlived the run"
    assert "Traceback" not in err
    assert err == ("amelia: interrupted\n" if sig == signal.SIGINT else "amelia: terminated\n")
    assert "amelia: interrupted: " in out  # the summary line: the run itself was interrupted
    assert not (project.root / "one.txt").exists() and not (project.root / "after.txt").exists()
    r = project.run("runs", "--json", check=0)
    import json

    assert json.loads(r.stdout)[0]["status"] == "interrupted"


def test_two_ctrl_c_never_print_a_traceback(project):
    project.pipeline(LONG)
    proc = _start(project, "run", "--jobs", "2")
    _wait_for(project, "one.child", "two.child")
    pids = _pids(project)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Traceback" not in err and "Traceback" not in out
    assert _none_alive(pids)


def test_kill_9_of_the_runner_group_leaves_no_step_behind(project):
    """The reaper sees the runner's pipe close and kills the step groups: no orphan, and
    the side effect after the sleep never happens, so the rerun runs it exactly once."""
    project.pipeline(LONG)
    proc = _start(project, "run", "--jobs", "2", new_group=True)
    _wait_for(project, "one.child", "two.child")
    pids = _pids(project)
    time.sleep(REGISTERED)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _none_alive(pids), "a step survived kill -9 of the runner"
    time.sleep(0.3)
    assert not (project.root / "one.txt").exists()


def test_ctrl_c_on_the_rerun_after_an_interrupt_continues(project):
    """Interrupted, then rerun: what finished is cached, the stopped steps run again."""
    project.pipeline(LONG.replace("sleep 30", "sleep ${AMELIA_SLEEP:-30}").replace(
        "sleep 31", "sleep 0"))
    proc = _start(project, "run", "--jobs", "2")
    _wait_for(project, "one.child", "two.txt")
    time.sleep(1.0)  # two.txt is written just before step two ends: let it end (one runs 30 s)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    r = project.run("run", env={"AMELIA_SLEEP": "0"}, check=0)
    assert "2 ran, 1 cached" in r.stdout


def test_a_short_chain_starts_while_a_long_step_runs(project):
    project.pipeline("""\
        amelia: 1
        steps:
          slow:
            run: sleep 4; echo x > slow.txt
            output: slow.txt
          fast:
            run: date +%s.%N > fast.txt
            output: fast.txt
          after:
            run: date +%s.%N > after.txt
            inputs: [fast.txt]
            output: after.txt
          after2:
            run: date +%s.%N > after2.txt
            inputs: [after.txt]
            output: after2.txt
        """)
    project.run("run", "--jobs", "2", check=0)
    fast = float(project.read("fast.txt"))
    after2 = float(project.read("after2.txt"))
    assert after2 - fast < 2.0, f"the chain waited {after2 - fast:.1f}s for the unrelated slow step"


def test_ctrl_c_stops_a_run_waiting_on_a_model_call(project):
    """A model call cannot be interrupted: the run abandons it after the grace and exits."""
    from fakes import FakeOpenAI, Reply

    with FakeOpenAI(Reply(text="late", hang=30)) as oai:
        project.pipeline(f"""\
            amelia: 1
            models:
              default: {{provider: openai, base_url: "{oai.base_url}", model: fake, retries: 0}}
            steps:
              ask:
                agent: {{system: You answer.}}
                prompt: Say hi.
                output: answer.md
              side:
                run: "echo $$ > side.pid; sleep 30"
            """)
        proc = _start(project, "run", "--jobs", "2")
        _wait_for(project, "side.pid")
        deadline = time.monotonic() + 10
        while not oai.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert oai.requests, "the model was never called"
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t
    assert proc.returncode == 130, err
    assert took < 3.5, f"exit took {took:.1f}s"
    assert "Traceback" not in err
    assert not (project.root / "answer.md").exists()
    assert _none_alive([int(project.read("side.pid"))], within=1.0)


def test_kill_9_during_a_claude_code_step_leaves_no_claude_behind(project, tmp_path, monkeypatch):
    """The CLI a claude-code step runs is one of the step's process groups: the reaper
    kills it with the others when the runner dies."""
    import stat
    import textwrap

    # a coding agent needs a git repository (it works in a scratch worktree of it)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-q",
                    "--allow-empty", "-m", "init"], cwd=project.root, check=True)
    fake = tmp_path / "claude"
    fake.write_text(textwrap.dedent("""\
        #!/bin/bash
        cd "$PID_DIR"
        echo $$ > claude.pid
        sleep 30 & echo $! > claude.child
        wait
        echo '{"type": "result", "is_error": false, "result": "late"}'
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    project.pipeline("""\
        amelia: 1
        models:
          coder: {provider: claude-code, retries: 0}
        steps:
          edit:
            agent: {model: coder}
            prompt: Fix the bug.
            output: build/edit.md
        """)
    env = dict(os.environ, CLAUDE_CODE_PATH=str(fake), PID_DIR=str(project.root))
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "run"], cwd=project.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for(project, "claude.pid", "claude.child")
    pids = [int(project.read("claude.pid")), int(project.read("claude.child"))]
    time.sleep(REGISTERED)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _none_alive(pids), "the Claude Code CLI outlived the runner"
    assert not (project.root / "build" / "edit.md").exists()
