"""The reaper: kills a run's step process groups when the runner itself dies.

Started once per run (only when steps run) as `python -I -S reaper.py`, in its own
session so that a signal to the runner's process group does not reach it. The runner
writes `+PGID` when a step starts and `-PGID` when it ended; when the pipe reaches end
of file (the runner exited or was killed, even with kill -9, since the kernel closes
its descriptors) every group still registered gets SIGTERM, then SIGKILL after the
grace period. Standard library only: it must start fast and import nothing of amelia.
"""

import os
import signal
import sys
import time

GRACE = 2.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal(groups, sig) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(groups: set, grace: float = GRACE) -> None:
    _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        groups = {g for g in groups if _alive(g)}
        if not groups:
            return
        time.sleep(0.05)
    _signal(groups, signal.SIGKILL)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the end of the pipe ends it
    groups: set = set()
    stdin = sys.stdin.buffer
    for line in stdin:
        line = line.strip()
        if line[:1] == b"+":
            groups.add(int(line[1:]))
        elif line[:1] == b"-":
            groups.discard(int(line[1:]))
    if groups:
        reap(groups)


if __name__ == "__main__":
    main()
