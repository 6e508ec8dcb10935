"""Looking at processes through /proc (Linux), for tests that check what was killed.

A killed process whose parent has not reaped it yet is a zombie: it is gone for these
helpers. (An orphan is re-parented to PID 1, which in a container may never reap it.)
"""

from __future__ import annotations

import os
import time


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:][:1].decode()


def alive(pid: int) -> bool:
    """Running or sleeping: not gone, not a zombie."""
    return state(pid) not in (None, "Z", "X")


def group(pgid: int) -> list[int]:
    """The live (non-zombie) members of a process group."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            out.append(int(name))
    return out


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds; False if it did not within `timeout`."""
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)


def read_pid(path, timeout: float = 10.0) -> int:
    """A pid a command wrote to `path` (waits until it is there, whole)."""
    def ready():
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return False
        return text.endswith("\n")

    assert wait_until(ready, timeout), f"{path} was not written"
    with open(path) as f:
        return int(f.read())


def ignores(pid: int, sig: int) -> bool:
    """Whether the process ignores `sig` (its SigIgn mask in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except FileNotFoundError:
        pass
    return False
