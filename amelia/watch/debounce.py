"""A burst of saves makes one run: changes are gathered until `quiet` seconds pass with no
new one, or `cap` seconds since the first (a file rewritten without pause still runs)."""

from __future__ import annotations

import time

QUIET = 0.05  # an editor's save (temp file, rename, chmod) is over well within this
CAP = 1.0


class Debouncer:
    def __init__(self, quiet: float = QUIET, cap: float = CAP, clock=time.monotonic):
        self.quiet = quiet
        self.cap = max(cap, quiet)
        self.clock = clock  # tests pass a fake one
        self.paths: set = set()
        self.first = self.last = 0.0

    def add(self, paths) -> None:
        paths = set(paths)
        if not paths:
            return
        now = self.clock()
        if not self.paths:
            self.first = now
        self.last = now
        self.paths |= paths

    @property
    def pending(self) -> bool:
        return bool(self.paths)

    def wait(self) -> float | None:
        """Seconds until the gathered changes are due; None when there are none."""
        if not self.paths:
            return None
        return max(0.0, min(self.last + self.quiet, self.first + self.cap) - self.clock())

    def due(self) -> bool:
        return bool(self.paths) and self.wait() == 0.0

    def take(self) -> set:
        out, self.paths = self.paths, set()
        return out
