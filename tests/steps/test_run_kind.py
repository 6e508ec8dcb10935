"""The `run:` kind's execute(step, ctx, cancel), called directly with a real RunContext.

The command runs under bash in the project root, gets template values as environment
variables only, and its whole process group is stopped by a timeout, by cancellation
and when the step ends. Processes are checked in /proc (tests/fakes/procs.py): the
pids come from files the commands write (`$$`, `$!`), so nothing waits on a clock
except the timeout test's own timeout.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from amelia.processes import CancelToken, StepCancelled
from amelia.steps import StepError, StepResult
from amelia.steps import run as run_kind
from conftest import run_context
from fakes import procs

PIPELINE = """\
    amelia: 1
    name: kinds
    params:
      goal: {type: string, default: "$(touch PWNED)"}
      semi: {type: string, default: "x; touch PWNED2"}
      unused: {type: string, default: "never exported"}
    steps:
      where:
        run: |
          pwd -P > where.txt
          echo "$BASH_VERSION|$AMELIA_STEP|$AMELIA_RUN_ID" > who.txt
      inert:
        run: |
          echo "${{ params.goal }}" > quoted.txt
          echo ${{ params.goal }} > unquoted.txt
          echo ${{ params.semi }} > semi.txt
          env | grep '^AMELIA_' | cut -d= -f1 | sort > names.txt
      pipefail:
        run: |
          false | true
          echo after > after.txt
      errexit:
        run: |
          false
          echo after > after.txt
      fails:
        run: |
          for i in $(seq 1 30); do echo "line $i"; done
          echo oops >&2
          exit 3
      killed:
        run: kill -KILL $$
      slow:
        run: |
          echo $$ > leader.pid
          sleep 30 & echo $! > child.pid
          wait
        timeout: 1
      deaf:
        run: |
          trap '' TERM
          echo $$ > leader.pid
          sleep 30 & echo $! > child.pid
          wait
        timeout: 0.5
      hangs:
        run: |
          echo $$ > leader.pid
          sleep 30 & echo $! > child.pid
          wait
      daemon:
        run: |
          echo $$ > leader.pid
          sleep 30 > /dev/null 2>&1 &
          echo $! > child.pid
    """


@pytest.fixture
def ctx(tmp_path):
    with run_context(tmp_path, PIPELINE, "run-7") as c:
        yield c


def execute(ctx, sid, cancel=None):
    return run_kind.execute(ctx.pipeline.step(sid), ctx, cancel or CancelToken())


def gone(pid) -> bool:
    """The process is dead (a SIGKILL is delivered when the process is next scheduled)."""
    return procs.wait_until(lambda: not procs.alive(pid), 5)


def read(ctx, rel):
    with open(os.path.join(ctx.root, rel)) as f:
        return f.read()


def test_the_command_runs_in_the_project_root_with_bash(ctx):
    assert execute(ctx, "where") == StepResult()
    assert read(ctx, "where.txt").strip() == os.path.realpath(ctx.root)
    bash_version, step, run_id = read(ctx, "who.txt").strip().split("|")
    assert bash_version and (step, run_id) == ("where", "run-7")


def test_its_output_goes_to_the_steps_log(ctx):
    with pytest.raises(StepError):
        execute(ctx, "fails")
    log = read(ctx, os.path.relpath(ctx.log_path(ctx.pipeline.step("fails")), ctx.root))
    assert log.splitlines() == [f"line {i}" for i in range(1, 31)] + ["oops"]


def test_template_values_arrive_as_environment_variables_never_as_shell_text(ctx):
    execute(ctx, "inert")
    assert read(ctx, "quoted.txt") == "$(touch PWNED)\n"
    assert read(ctx, "unquoted.txt") == "$(touch PWNED)\n"  # split into words, never evaluated
    assert read(ctx, "semi.txt") == "x; touch PWNED2\n"
    assert not os.path.exists(os.path.join(ctx.root, "PWNED"))
    assert not os.path.exists(os.path.join(ctx.root, "PWNED2"))
    # Only the params the step references are exported to it.
    names = read(ctx, "names.txt").split()
    assert "AMELIA_PARAM_GOAL" in names and "AMELIA_PARAM_SEMI" in names
    assert "AMELIA_PARAM_UNUSED" not in names


@pytest.mark.parametrize("sid", ["pipefail", "errexit"])
def test_bash_runs_with_errexit_and_pipefail(ctx, sid):
    with pytest.raises(StepError) as e:
        execute(ctx, sid)
    assert e.value.message == "command exited with code 1" and e.value.exit_code == 1
    assert not os.path.exists(os.path.join(ctx.root, "after.txt"))


def test_a_non_zero_exit_is_a_step_error_with_the_code_and_the_logs_tail(ctx):
    with pytest.raises(StepError) as e:
        execute(ctx, "fails")
    assert e.value.message == "command exited with code 3"
    assert e.value.exit_code == 3
    # The last TAIL_LINES lines of stdout and stderr together.
    assert e.value.tail.splitlines() == [f"line {i}" for i in range(12, 31)] + ["oops"]
    assert len(e.value.tail.splitlines()) == run_kind.TAIL_LINES


def test_a_command_killed_by_a_signal_says_which(ctx):
    with pytest.raises(StepError) as e:
        execute(ctx, "killed")
    assert e.value.message == "command killed by signal 9"
    assert e.value.exit_code == -signal.SIGKILL


def test_the_timeout_stops_the_whole_process_group(ctx):
    with pytest.raises(StepError) as e:
        execute(ctx, "slow")
    assert e.value.message == "timed out after 1s"
    assert e.value.exit_code is None
    leader, child = procs.read_pid(os.path.join(ctx.root, "leader.pid")), procs.read_pid(
        os.path.join(ctx.root, "child.pid"))
    assert gone(child)  # the `sleep` the command started, not only bash
    assert procs.wait_until(lambda: procs.group(leader) == [], 5)
    assert len(ctx.processes) == 0


def test_a_timed_out_command_that_ignores_sigterm_is_killed_after_the_grace(ctx):
    """The scheduler's loop calls escalate(); here a thread does, as it would."""
    done = threading.Event()

    def loop():
        while not done.is_set():
            ctx.processes.escalate()
            done.wait(0.05)

    poller = threading.Thread(target=loop, daemon=True)
    poller.start()
    try:
        with pytest.raises(StepError, match=r"timed out after 0.5s"):
            execute(ctx, "deaf")
    finally:
        done.set()
        poller.join(5)
    leader = procs.read_pid(os.path.join(ctx.root, "leader.pid"))
    assert gone(procs.read_pid(os.path.join(ctx.root, "child.pid")))
    assert procs.wait_until(lambda: procs.group(leader) == [], 5)


def test_cancelling_from_another_thread_stops_the_group_and_raises_step_cancelled(ctx):
    token = CancelToken()
    child_file = os.path.join(ctx.root, "child.pid")
    stopped_at = []

    def cancel_when_running():
        procs.read_pid(child_file)  # the command has started its child
        stopped_at.append(time.monotonic())
        token.cancel("interrupted")

    helper = threading.Thread(target=cancel_when_running)
    helper.start()
    with pytest.raises(StepCancelled) as e:
        execute(ctx, "hangs", token)
    returned = time.monotonic()
    helper.join(10)
    assert str(e.value) == "interrupted"
    assert returned - stopped_at[0] < 3.0  # SIGTERM stops it at once (about a second at most)
    leader, child = procs.read_pid(os.path.join(ctx.root, "leader.pid")), procs.read_pid(child_file)
    assert gone(child)
    assert procs.wait_until(lambda: procs.group(leader) == [], 5)


def test_an_already_cancelled_token_stops_the_command_at_once(ctx):
    token = CancelToken()
    token.cancel("watch: file changed")
    with pytest.raises(StepCancelled, match="watch: file changed"):
        execute(ctx, "hangs", token)


def test_a_background_process_left_behind_is_killed_when_the_step_ends(ctx):
    assert execute(ctx, "daemon") == StepResult()
    leader, child = procs.read_pid(os.path.join(ctx.root, "leader.pid")), procs.read_pid(
        os.path.join(ctx.root, "child.pid"))
    assert gone(child)  # ProcessGroups.release sent the group SIGKILL
    assert procs.wait_until(lambda: procs.group(leader) == [], 5)
    assert len(ctx.processes) == 0


def test_bash_missing_from_path_is_a_step_error_with_a_hint(ctx, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(StepError) as e:
        execute(ctx, "where")
    assert (e.value.message, e.value.hint) == ("the shell 'bash' was not found on PATH",
                                              "install bash, or name another with `shell:`")


def test_a_value_too_large_for_the_environment_is_a_step_error(tmp_path):
    big = """\
        amelia: 1
        steps:
          a:
            run: "true"
            output: a.txt
          b:
            run: echo "${{ steps.a.output }}" > b.txt
        """
    (tmp_path / "a.txt").write_text("é" * (100 * 1024), encoding="utf-8")  # 200 KiB of UTF-8
    with run_context(tmp_path, big, "run-8") as c:
        with pytest.raises(StepError, match="larger than 100 KiB"):
            run_kind.execute(c.pipeline.step("b"), c, CancelToken())
