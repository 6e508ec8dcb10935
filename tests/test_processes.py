"""amelia.processes and amelia.reaper in process: CancelToken, ProcessGroups (stop, then
escalate after the grace; release), and the reaper that kills registered groups when
its pipe closes.

Time is the escalation's business, so `processes.time` is replaced by a clock the test
moves; the reaper runs as the real `python -I -S amelia/reaper.py` (its grace is real:
a test waits for it with a bound, GRACE + 1 s). Processes are checked in /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types

import pytest

from amelia import processes, reaper
from amelia.processes import CancelToken, ProcessGroups, StepCancelled
from fakes import procs

REAPER = os.path.join(os.path.dirname(processes.__file__), "reaper.py")


# -- CancelToken -----------------------------------------------------------------------

def test_callbacks_run_once_in_order_and_the_first_reason_stays():
    token = CancelToken()
    calls = []
    token.on_cancel(lambda: calls.append("a"))
    token.on_cancel(lambda: calls.append("b"))
    assert calls == [] and not token.cancelled
    token.cancel("interrupted")
    token.cancel("again")
    assert calls == ["a", "b"]
    assert token.cancelled and token.reason == "interrupted" and token.when > 0


def test_a_callback_added_after_cancellation_runs_at_once():
    token = CancelToken()
    token.cancel("stop")
    calls = []
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["late"]
    token.cancel("stop")
    assert calls == ["late"]


def test_a_removed_callback_is_not_called():
    token = CancelToken()
    calls = []

    def cb():
        calls.append("x")

    token.on_cancel(cb)
    token.remove(cb)
    token.remove(cb)  # removing twice is harmless
    token.cancel()
    assert calls == []


def test_check_raises_step_cancelled_with_the_reason_once_cancelled():
    token = CancelToken()
    token.check()  # not cancelled: nothing
    token.cancel("watch: file changed")
    with pytest.raises(StepCancelled, match="watch: file changed"):
        token.check()


def test_the_default_reason_is_cancelled():
    token = CancelToken()
    token.cancel()
    assert token.reason == "cancelled"


# -- ProcessGroups ---------------------------------------------------------------------

class Clock:
    """time.monotonic for amelia.processes, moved by the test."""

    def __init__(self, now=1000.0):
        self.now = now

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(processes, "time", types.SimpleNamespace(monotonic=c.monotonic))
    return c


@pytest.fixture
def groups():
    pg = ProcessGroups()
    yield pg
    pg.kill_all()
    pg.close()


def deaf_command(tmp_path) -> tuple:
    """bash in its own group that ignores SIGTERM (and so does its `sleep`); it writes
    `ready` once the trap is set and the sleep started."""
    ready = tmp_path / "ready"
    return ["bash", "-c", f"trap '' TERM; sleep 30 & echo $$ > {ready}; wait; wait"], ready


def wait_ready(path):
    return procs.read_pid(path)


def test_stop_then_escalate_kills_a_group_that_ignores_sigterm_only_after_the_grace(
        tmp_path, clock, groups, monkeypatch):
    sent = []
    real = processes.signal_group
    monkeypatch.setattr(processes, "signal_group", lambda pgid, sig: sent.append(sig) or real(pgid, sig))
    args, ready = deaf_command(tmp_path)
    proc = groups.spawn(args, CancelToken())
    wait_ready(ready)
    groups.stop(proc.pid, grace=2.0)  # SIGTERM now: ignored
    assert sent == [signal.SIGTERM]
    clock.now += 1.9
    groups.escalate()
    assert sent == [signal.SIGTERM]  # within the grace: nothing more
    assert proc.poll() is None and len(procs.group(proc.pid)) == 2  # bash and its sleep live on
    clock.now += 0.1
    groups.escalate()  # the grace is over: SIGKILL to the whole group
    assert sent == [signal.SIGTERM, signal.SIGKILL]
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert procs.wait_until(lambda: procs.group(proc.pid) == [], 5)
    groups.release(proc)


def test_a_cancelled_token_stops_its_group(groups):
    token = CancelToken()
    proc = groups.spawn(["sleep", "30"], token)
    token.cancel("interrupted")
    assert proc.wait(timeout=5) == -signal.SIGTERM
    groups.release(proc)


def test_spawning_with_an_already_cancelled_token_stops_it_at_once(groups):
    token = CancelToken()
    token.cancel()
    proc = groups.spawn(["sleep", "30"], token)
    assert proc.wait(timeout=5) == -signal.SIGTERM
    groups.release(proc)


def test_each_spawned_process_leads_its_own_group(groups):
    proc = groups.spawn(["sleep", "30"], CancelToken())
    assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    assert len(groups) == 1
    groups.release(proc)
    assert len(groups) == 0


def test_release_kills_what_a_command_left_behind(tmp_path, groups):
    pid_file = tmp_path / "child.pid"
    proc = groups.spawn(["bash", "-c", f"sleep 30 >/dev/null 2>&1 & echo $! > {pid_file}"], CancelToken())
    assert proc.wait(timeout=10) == 0
    child = procs.read_pid(pid_file)
    assert procs.alive(child)  # bash is gone; its child lives on in the group
    groups.release(proc)
    assert procs.wait_until(lambda: not procs.alive(child), 5)


def test_a_released_group_is_not_killed_again_by_escalate(tmp_path, clock, groups, monkeypatch):
    args, ready = deaf_command(tmp_path)
    proc = groups.spawn(args, CancelToken())
    wait_ready(ready)
    groups.stop(proc.pid, grace=1.0)
    groups.release(proc)  # the step ended: SIGKILL now, and its pgid is forgotten
    assert proc.wait(timeout=5) == -signal.SIGKILL
    sent = []
    monkeypatch.setattr(processes, "signal_group", lambda pgid, sig: sent.append((pgid, sig)) or True)
    clock.now += 5
    groups.escalate()  # its pid may belong to another group by now
    assert sent == []


def test_a_token_cancelled_after_release_does_not_signal_the_released_pgid(groups, monkeypatch):
    token = CancelToken()
    proc = groups.spawn(["true"], token)
    proc.wait(timeout=5)
    groups.release(proc)
    sent = []
    monkeypatch.setattr(processes, "signal_group", lambda pgid, sig: sent.append((pgid, sig)) or True)
    token.cancel("interrupted")
    assert sent == []


def test_stop_on_a_group_that_is_gone_does_nothing(groups, clock):
    proc = groups.spawn(["true"], CancelToken())
    proc.wait(timeout=5)
    groups.release(proc)
    groups.stop(proc.pid)
    assert groups._kill_at == {}


def test_kill_all_kills_every_live_group(groups):
    procs_ = [groups.spawn(["sleep", "30"], CancelToken()) for _ in range(3)]
    groups.kill_all()
    assert [p.wait(timeout=5) for p in procs_] == [-signal.SIGKILL] * 3
    for p in procs_:
        groups.release(p)


def test_the_reaper_pipe_is_not_inherited_by_step_processes(tmp_path, groups):
    first = groups.spawn(["true"], CancelToken())  # starts the reaper
    first.wait(timeout=5)
    groups.release(first)
    pipe = os.fstat(groups._reaper_pipe).st_ino
    out = tmp_path / "fds.txt"
    second = groups.spawn(["bash", "-c", f"ls -l /proc/$$/fd/ > {out}"],
                          CancelToken())
    assert second.wait(timeout=5) == 0
    groups.release(second)
    assert os.readlink(f"/proc/self/fd/{groups._reaper_pipe}") == f"pipe:[{pipe}]"  # what to look for
    assert f"pipe:[{pipe}]" not in out.read_text()


def test_when_the_runner_dies_the_reaper_kills_its_registered_groups(groups):
    proc = groups.spawn(["sleep", "30"], CancelToken())  # registered with the reaper: +PGID
    # What the kernel does when amelia dies, even by kill -9: the pipe's write end closes.
    os.close(groups._reaper_pipe)
    groups._reaper_pipe = None
    assert proc.wait(timeout=reaper.GRACE + 1) == -signal.SIGTERM
    groups.release(proc)


# -- the reaper ------------------------------------------------------------------------

@pytest.fixture
def victims():
    started = []

    def start(command: str) -> subprocess.Popen:
        p = subprocess.Popen(["bash", "-c", command], start_new_session=True)
        started.append(p)
        return p

    yield start
    for p in started:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def start_reaper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-I", "-S", REAPER], stdin=subprocess.PIPE,
                            start_new_session=True)


def tell(r: subprocess.Popen, line: str) -> None:
    r.stdin.write(line.encode() + b"\n")
    r.stdin.flush()


def test_the_reaper_kills_a_registered_group_that_ignores_sigterm_when_its_pipe_closes(tmp_path, victims):
    ready = tmp_path / "ready"
    victim = victims(f"trap '' TERM; sleep 30 & echo $$ > {ready}; wait; wait")
    procs.read_pid(ready)
    assert len(procs.group(victim.pid)) == 2  # bash and its sleep
    r = start_reaper()
    tell(r, f"+{victim.pid}")
    r.stdin.close()  # as when amelia dies
    assert victim.wait(timeout=reaper.GRACE + 1) == -signal.SIGKILL
    assert procs.wait_until(lambda: procs.group(victim.pid) == [], 1)
    assert r.wait(timeout=5) == 0


def test_a_group_unregistered_with_minus_pgid_is_left_alone(tmp_path, victims):
    kept = victims("sleep 30")  # dies on SIGTERM: any signal the reaper sent would show
    reaped = victims("sleep 30")
    r = start_reaper()
    tell(r, f"+{kept.pid}")
    tell(r, f"+{reaped.pid}")
    tell(r, f"-{kept.pid}")
    r.stdin.close()
    assert reaped.wait(timeout=reaper.GRACE + 1) == -signal.SIGTERM
    assert r.wait(timeout=5) == 0  # the reaper is done: it will never signal `kept`
    assert kept.poll() is None and procs.alive(kept.pid)


def test_the_reaper_exits_at_once_with_nothing_registered(victims):
    r = start_reaper()
    r.stdin.close()
    assert r.wait(timeout=5) == 0


def test_the_reaper_ignores_sigint(victims):
    victim = victims("sleep 30")
    r = start_reaper()
    assert procs.wait_until(lambda: procs.ignores(r.pid, signal.SIGINT), 10)
    tell(r, f"+{victim.pid}")
    os.kill(r.pid, signal.SIGINT)  # Ctrl-C reaches amelia's group, never its reaper
    r.stdin.close()
    assert victim.wait(timeout=reaper.GRACE + 1) == -signal.SIGTERM
    assert r.wait(timeout=5) == 0


def test_reap_sends_sigkill_only_to_groups_still_alive_after_the_grace(monkeypatch):
    sent, alive = [], {11: True, 12: True}
    now = [0.0]

    def killpg(pgid, sig):
        if sig == 0:
            if not alive[pgid]:
                raise ProcessLookupError
            return
        sent.append((pgid, sig))
        if sig == signal.SIGTERM and pgid == 11:
            alive[11] = False  # 11 stops on SIGTERM; 12 ignores it

    def sleep(s):
        now[0] += s

    monkeypatch.setattr(reaper, "os", types.SimpleNamespace(killpg=killpg))
    monkeypatch.setattr(reaper, "time", types.SimpleNamespace(monotonic=lambda: now[0], sleep=sleep))
    reaper.reap({11, 12}, grace=1.0)
    assert sorted(sent) == [(11, signal.SIGTERM), (12, signal.SIGKILL), (12, signal.SIGTERM)]
    assert sent.index((12, signal.SIGKILL)) == 2 and now[0] >= 1.0  # SIGKILL came after the grace


def test_reap_returns_early_once_every_group_is_gone(monkeypatch):
    sent, now = [], [0.0]

    def killpg(pgid, sig):
        if sig == 0:
            raise ProcessLookupError  # gone at the first look
        sent.append((pgid, sig))

    monkeypatch.setattr(reaper, "os", types.SimpleNamespace(killpg=killpg))
    monkeypatch.setattr(reaper, "time", types.SimpleNamespace(monotonic=lambda: now[0],
                                                              sleep=lambda s: now.__setitem__(0, now[0] + s)))
    reaper.reap({21}, grace=5.0)
    assert sent == [(21, signal.SIGTERM)] and now[0] == 0.0
