"""Typed events on one bus; reporters, the run record and the log file subscribe."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar


@dataclass(frozen=True)
class Event:
    run_id: str
    time: float = field(default_factory=time.time, kw_only=True)
    # Fields holding text from outside (a server's error, a step's output): the bus
    # redacts secrets in them before any subscriber shows or stores them (DESIGN §11).
    OUTSIDE: ClassVar[tuple] = ()

    def redacted(self) -> "Event":
        if not self.OUTSIDE:
            return self
        from .safetext import redact

        changed = {}
        for name in self.OUTSIDE:
            value = getattr(self, name)
            if isinstance(value, str) and value:
                clean = redact(value)
                if clean != value:
                    changed[name] = clean
        return replace(self, **changed) if changed else self

    @property
    def type(self) -> str:
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["type"] = self.type
        return d


@dataclass(frozen=True)
class RunStarted(Event):
    pipeline: str
    file: str
    steps: tuple  # (step id, planned action, reasons: tuple of reasons.Reason)
    jobs: int


@dataclass(frozen=True)
class StepStarted(Event):
    step: str
    reasons: tuple = ()  # reasons.Reason


@dataclass(frozen=True)
class StepCached(Event):
    step: str
    reasons: tuple = ()  # reasons.Reason: output_missing (restored), upstream_unchanged
    key: str = ""


@dataclass(frozen=True)
class StepCompleted(Event):
    step: str
    duration: float
    outputs: dict = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class StepFailed(Event):
    step: str
    error: str
    duration: float = 0.0
    exit_code: int | None = None
    log: str = ""  # path of the step's log, when it wrote one
    tail: str = ""  # the last lines of its output
    OUTSIDE: ClassVar[tuple] = ("error", "log", "tail")


@dataclass(frozen=True)
class StepSkipped(Event):
    step: str
    reason: str
    OUTSIDE: ClassVar[tuple] = ("reason",)


@dataclass(frozen=True)
class StepCancelled(Event):
    """A running or ready step stopped on request (Ctrl-C, SIGTERM, `watch`)."""

    step: str
    reason: str = "cancelled"
    duration: float = 0.0
    OUTSIDE: ClassVar[tuple] = ("reason",)


@dataclass(frozen=True)
class StepProgress(Event):
    step: str
    message: str
    OUTSIDE: ClassVar[tuple] = ("message",)


@dataclass(frozen=True)
class StepWarning(Event):
    """Something the user should read that did not fail the step (a document skipped)."""

    step: str
    message: str
    OUTSIDE: ClassVar[tuple] = ("message",)


@dataclass(frozen=True)
class SourceIndexed(Event):
    """A RAG source brought up to date (an index step that ran)."""

    step: str
    source: str
    added: int
    changed: int
    removed: int
    unchanged: int
    skipped: int
    chunks_embedded: int
    chunks_total: int
    seconds: float


@dataclass(frozen=True)
class TargetCommitted(Event):
    """A git target's commit for this run: its sha, or "" when nothing changed (or it failed:
    `error` says why)."""

    target: str
    branch: str
    commit: str
    files: tuple
    pushed: bool = False
    error: str = ""
    OUTSIDE: ClassVar[tuple] = ("error",)


@dataclass(frozen=True)
class ModelCalled(Event):
    """One model call of a step (after its retries): what it cost."""

    step: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    latency: float
    retries: int
    cost: float | None


@dataclass(frozen=True)
class RunFinished(Event):
    status: str  # ok | failed | cancelled | interrupted
    counts: dict
    duration: float


class Bus:
    def __init__(self):
        self._subscribers = []
        self._lock = threading.Lock()

    def subscribe(self, fn) -> None:
        self._subscribers.append(fn)

    def emit(self, event: Event) -> None:
        event = event.redacted()  # no subscriber ever sees a secret
        with self._lock:  # steps run on threads; subscribers see one event at a time
            for fn in self._subscribers:
                fn(event)
