"""One writer per project: an flock on .amelia/lock, released by the OS if we die."""

from __future__ import annotations

import fcntl
import os
import time

from ..errors import LockHeld


class ProjectLock:
    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: bool = False, timeout: float | None = None) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only .amelia/, a full disk: exit 4, not a traceback
            from .problems import os_problem

            raise os_problem(self.path, e) from e
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait or (deadline is not None and time.monotonic() > deadline):
                        holder = _read_holder(fd)
                        raise LockHeld(
                            f"another amelia process{holder} is running in this project",
                            hint="wait for it to finish, or pass --wait to queue behind it",
                        ) from None
                    time.sleep(0.05)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            except OSError:  # only says who holds the lock: a full disk does not stop us here
                pass
        except BaseException:  # LockHeld, or Ctrl-C while waiting: do not leak the fd
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
