"""A step kind for in-process scheduler tests: each step waits for the test to let it go.

A step's behaviour comes from `step.config["fake"]`: "ok" (finish at once), "wait" (until
the test calls `release(id)`), "fail", "hang" (until cancelled), or "deaf" (ignores
cancellation until released). Starts and ends are logged in order, so tests assert on
order, not on time.
"""

from __future__ import annotations

import threading

from amelia.processes import StepCancelled
from amelia.steps import StepError

LOG: list = []  # ("start" | "end", step id)
_gates: dict = {}
_lock = threading.Lock()
RUNNING = {"now": 0, "most": 0}
MODEL = None  # a ModelConfig for `models`, set by a test


def reset() -> None:
    LOG.clear()
    _gates.clear()
    RUNNING.update(now=0, most=0)


def gate(sid: str) -> threading.Event:
    with _lock:
        return _gates.setdefault(sid, threading.Event())


def release(sid: str) -> None:
    gate(sid).set()


def started(sid: str, timeout: float = 10.0) -> bool:
    """Wait until the step has started (for tests that act on a running step)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ("start", sid) in LOG:
            return True
        time.sleep(0.005)
    return False


def models(step) -> list:
    return [MODEL] if MODEL is not None else []


def execute(step, ctx, cancel):
    mode = step.config.get("fake", "ok")
    with _lock:
        LOG.append(("start", step.id))
        RUNNING["now"] += 1
        RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])
    try:
        if mode == "wait":
            while not gate(step.id).wait(0.01):
                cancel.check()
        elif mode == "hang":
            while not cancel.cancelled:
                gate(step.id).wait(0.01)
            raise StepCancelled(cancel.reason)
        elif mode == "deaf":  # ignores cancellation, like a call that cannot be interrupted
            gate(step.id).wait(30)
        elif mode == "fail":
            raise StepError("told to fail")
    finally:
        with _lock:
            RUNNING["now"] -= 1
            LOG.append(("end", step.id))
