"""Step processes that never outlive the runner, and cancellation tokens.

Every process a step starts is the leader of its own process group, so stopping a step
stops everything it started. Three ways a group is stopped:
- its step is cancelled (Ctrl-C, SIGTERM, `watch`): SIGTERM to the group, SIGKILL
  after GRACE seconds if anything in it still lives;
- its step's timeout: the same;
- the runner dies, even by kill -9: the reaper (reaper.py, a process of its own
  session that reads a pipe from us) sees the pipe close and kills every group still
  registered. See docs/architecture.md, "Stopping".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

GRACE = 2.0  # seconds between SIGTERM and SIGKILL


class StepCancelled(Exception):
    """Raised inside a step kind when its token was cancelled."""


class CancelToken:
    """One step's cancellation: a flag, a time, and callbacks that stop its work.

    `cancel` may be called from a signal handler: it takes no lock a step could hold.
    """

    def __init__(self):
        self.cancelled = False
        self.reason = ""
        self.when = 0.0
        self._callbacks: list = []

    def cancel(self, reason: str = "cancelled") -> None:
        if self.cancelled:
            return
        self.reason, self.when = reason, time.monotonic()
        self.cancelled = True
        for cb in list(self._callbacks):
            cb()

    def on_cancel(self, callback) -> None:
        """Call `callback` on cancellation (at once if already cancelled)."""
        self._callbacks.append(callback)
        if self.cancelled:
            callback()

    def remove(self, callback) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def check(self) -> None:
        if self.cancelled:
            raise StepCancelled(self.reason)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class StepProcesses:
    """One step's view of the run's process groups: what it starts is stopped with its
    token, and registered with the reaper. Given to providers that run a program."""

    def __init__(self, groups: "ProcessGroups", token: CancelToken):
        self.groups = groups
        self.token = token

    def spawn(self, args, **popen_kwargs) -> subprocess.Popen:
        return self.groups.spawn(args, self.token, **popen_kwargs)

    def release(self, proc: subprocess.Popen) -> None:
        self.groups.release(proc)


class ProcessGroups:
    """The run's live step process groups, and the reaper that outlives us to kill them."""

    def __init__(self):
        self._groups: dict = {}  # pgid → Popen
        self._kill_at: dict = {}  # pgid → when SIGKILL follows the SIGTERM it got
        self._tokens: dict = {}  # pgid → (token, its stop callback)
        self._lock = threading.Lock()
        self._reaper = None
        self._reaper_pipe = None

    # -- the reaper -----------------------------------------------------------------
    def _tell_reaper(self, line: str) -> None:
        if self._reaper_pipe is None:
            read_fd, write_fd = os.pipe()
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
            self._reaper = subprocess.Popen(
                [sys.executable, "-I", "-S", path], stdin=read_fd, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            os.close(read_fd)
            self._reaper_pipe = write_fd  # not inheritable (PEP 446): steps never hold it
        try:
            os.write(self._reaper_pipe, line.encode() + b"\n")
        except OSError:
            pass  # the reaper is gone; cancellation in-process still works

    # -- groups ---------------------------------------------------------------------
    def spawn(self, args, token: CancelToken, **popen_kwargs) -> subprocess.Popen:
        """Start a process as the leader of a new group, stopped when `token` is cancelled."""
        proc = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
        with self._lock:  # not around Popen: steps on other threads start at the same time
            self._groups[proc.pid] = proc
            self._tell_reaper(f"+{proc.pid}")

        def stop():
            self.stop(proc.pid)

        self._tokens[proc.pid] = (token, stop)
        token.on_cancel(stop)
        return proc

    def release(self, proc: subprocess.Popen) -> None:
        """The step is done with this group: kill what is left of it, forget it."""
        signal_group(proc.pid, signal.SIGKILL)  # daemons a command left behind die with it
        token, stop = self._tokens.pop(proc.pid, (None, None))
        if token is not None:  # a later cancel must not signal a group id that is free again
            token.remove(stop)
        with self._lock:
            self._groups.pop(proc.pid, None)
            self._kill_at.pop(proc.pid, None)
            self._tell_reaper(f"-{proc.pid}")

    def stop(self, pgid: int, grace: float = GRACE) -> None:
        """SIGTERM now; `escalate` sends SIGKILL once `grace` has passed.

        Safe in a signal handler: a signal and a dict entry, no lock, no thread."""
        if signal_group(pgid, signal.SIGTERM):
            self._kill_at.setdefault(pgid, time.monotonic() + grace)

    def escalate(self) -> None:
        """SIGKILL to every stopped group whose grace has passed (the scheduler polls this)."""
        now = time.monotonic()
        for pgid, when in list(self._kill_at.items()):
            if now >= when:
                self._kill_at.pop(pgid, None)
                if pgid in self._groups:
                    signal_group(pgid, signal.SIGKILL)

    def kill_all(self) -> None:
        for pgid in list(self._groups):
            signal_group(pgid, signal.SIGKILL)

    def __len__(self) -> int:
        return len(self._groups)

    def close(self) -> None:
        """End of the run: the reaper exits (with nothing left to kill)."""
        if self._reaper_pipe is not None:
            os.close(self._reaper_pipe)
            self._reaper_pipe = None
        if self._reaper is not None:
            try:
                self._reaper.wait(timeout=GRACE + 1)
            except subprocess.TimeoutExpired:
                pass
            self._reaper = None
