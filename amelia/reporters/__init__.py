"""Subscribers to the event bus: plain lines, JSON lines, the run record, the log file.

The rich live view is in `live.py` and only imported on a terminal with work to do.
"""

from __future__ import annotations

import json
import sys

from .. import events as ev
from ..reasons import word
from ..render import fmt_seconds, summary_line


class PlainReporter:
    """One line per thing that happened; cached steps only when asked (-v) or restored."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.width = 0

    def line(self, tag: str, step: str, text: str = "") -> None:
        self.stream.write(f"{tag:<7} {step:<{self.width}}  {text}".rstrip() + "\n")
        self.stream.flush()

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted):
            self.width = max((len(s[0]) for s in e.steps), default=0)
        elif isinstance(e, ev.StepStarted):
            self.line("run", e.step, word(e.reasons))
        elif isinstance(e, ev.StepCached):
            if self.verbose or e.reasons:
                self.line("cached", e.step, word(e.reasons))
        elif isinstance(e, ev.StepCompleted):
            self.line("ok", e.step, fmt_seconds(e.duration))
        elif isinstance(e, ev.StepFailed):
            extra = f" (log: {e.log})" if e.log else ""
            self.line("FAILED", e.step, e.error + extra)
            for tail_line in e.tail.splitlines():
                self.stream.write(f"    | {tail_line}\n")
        elif isinstance(e, ev.StepSkipped):
            self.line("skipped", e.step, e.reason)
        elif isinstance(e, ev.StepCancelled):
            self.line("stopped", e.step, e.reason)
        elif isinstance(e, ev.StepProgress):
            if self.verbose:
                self.line("...", e.step, e.message)
        elif isinstance(e, ev.RunFinished):
            self.stream.write(summary_line(e.status, e.counts, e.duration, e.run_id) + "\n")
            self.stream.flush()


class JsonReporter:
    """JSON lines on stdout: one object per event."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def __call__(self, e: ev.Event) -> None:
        self.stream.write(json.dumps(e.to_dict(), default=str) + "\n")
        self.stream.flush()


class RecordReporter:
    """The run's history in state.db: the run row, each step's outcome, the events."""

    def __init__(self, state, argv: list):
        self.state = state
        self.argv = argv
        self.rows: dict = {}
        self.events: list = []
        self.started: dict = {}
        self.calls: dict = {}  # step → model calls so far

    def __call__(self, e: ev.Event) -> None:
        self.events.append((e.run_id, len(self.events), e.time, e.type,
                            json.dumps(e.to_dict(), default=str)))
        if isinstance(e, ev.RunStarted):
            self.state.start_run(e.run_id, e.pipeline, e.file, self.argv)
        elif isinstance(e, ev.StepStarted):
            self.started[e.step] = e.time
            self.rows[e.step] = [e.run_id, e.step, "running", word(e.reasons), None, e.time,
                                 None, None, None]
        elif isinstance(e, ev.StepCached):
            self.rows[e.step] = [e.run_id, e.step, "cached", word(e.reasons), e.key, e.time,
                                 0.0, None, None]
        elif isinstance(e, ev.StepCompleted):
            row = self.rows[e.step]
            row[2], row[4], row[6] = "ran", e.key, e.duration
        elif isinstance(e, ev.StepFailed):
            row = self.rows.setdefault(e.step, [e.run_id, e.step, "", "", None, e.time, 0.0, None, None])
            row[2], row[6], row[7], row[8] = "failed", e.duration, e.exit_code, e.error
        elif isinstance(e, ev.StepSkipped):
            self.rows[e.step] = [e.run_id, e.step, "skipped", e.reason, None, e.time, 0.0, None, None]
        elif isinstance(e, ev.StepCancelled):
            row = self.rows.setdefault(e.step, [e.run_id, e.step, "", "", None, e.time, 0.0, None, None])
            row[2], row[6], row[8] = "cancelled", e.duration, e.reason
        elif isinstance(e, ev.ModelCalled):
            self.calls[e.step] = self.calls.get(e.step, 0) + 1
            self.state.add_usage((e.run_id, e.step, self.calls[e.step], e.provider, e.model,
                                  e.input_tokens, e.output_tokens, e.cached_tokens,
                                  e.cache_write_tokens, e.latency, e.retries, e.cost, e.time))
        elif isinstance(e, ev.RunFinished):
            summary = {"counts": e.counts, "duration": e.duration}
            self.state.finish_run(e.run_id, e.status, summary,
                                  [tuple(r) for r in self.rows.values()], self.events)


class LogFileReporter:
    """The plain lines, with times, in .amelia/logs/RUN/run.log."""

    def __init__(self, path: str):
        self.path = path
        self.plain = None

    def __call__(self, e: ev.Event) -> None:
        if self.plain is None:
            self.file = open(self.path, "a", encoding="utf-8")
            self.plain = PlainReporter(self.file, verbose=True)
        self.plain(e)
        if isinstance(e, ev.RunFinished):
            self.file.close()
