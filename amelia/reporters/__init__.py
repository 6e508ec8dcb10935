"""Subscribers to the event bus: plain lines, JSON lines, the run record, the log file.

The rich live view is in `live.py` and only imported on a terminal with work to do.
Every text from outside (errors, tails, reasons naming files) is shown through
`safetext.safe`: secrets redacted, control and escape sequences shown, never executed.
The bus already redacts events; the reporters redact again for callers that feed them
directly. JSON lines and the run record keep the text as data (JSON escapes controls).
"""

from __future__ import annotations

import json
import os
import sys

from .. import events as ev
from ..reasons import word
from ..render import fmt_seconds, summary_line
from ..safetext import escape_line, redact, safe
from ..store import EventRow, StepRow, UsageRow


class PlainReporter:
    """One line per thing that happened; cached steps only when asked (-v) or restored."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.width = 0

    def line(self, tag: str, step: str, text: str = "") -> None:
        step, text = escape_line(step), safe(text)  # a multi-line error keeps its lines
        self.stream.write(f"{tag:<7} {step:<{self.width}}  {text}".rstrip() + "\n")
        self.stream.flush()

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted):
            self.width = max((len(escape_line(s[0])) for s in e.steps), default=0)
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
            for tail_line in safe(e.tail).splitlines():
                self.stream.write(f"    | {tail_line}\n")
            self.stream.flush()
        elif isinstance(e, ev.StepSkipped):
            self.line("skipped", e.step, e.reason)
        elif isinstance(e, ev.StepCancelled):
            self.line("stopped", e.step, e.reason)
        elif isinstance(e, ev.StepProgress):
            if self.verbose:
                self.line("...", e.step, e.message)
        elif isinstance(e, ev.StepWarning):
            self.line("warning", e.step, e.message)
        elif isinstance(e, ev.SourceIndexed):
            self.line("indexed", e.step, index_summary(e))
        elif isinstance(e, ev.TargetCommitted):
            text = commit_summary(e)
            if text or self.verbose:
                self.line("FAILED" if e.error else "commit", "target:" + e.target,
                          text or f"nothing to commit on {e.branch}")
        elif isinstance(e, ev.RunFinished):
            self.stream.write(summary_line(e.status, e.counts, e.duration, e.run_id) + "\n")
            self.stream.flush()


class JsonReporter:
    """JSON lines on stdout: one object per event."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def __call__(self, e: ev.Event) -> None:
        # ensure_ascii (the default): every control character is a \\uXXXX escape
        self.stream.write(json.dumps(e.redacted().to_dict(), default=str) + "\n")
        self.stream.flush()


class RecordReporter:
    """The run's history (store.history): the run, one StepRow per step, usage, events."""

    def __init__(self, history, argv: list):
        self.history = history
        self.argv = argv
        self.rows: dict = {}  # step → StepRow
        self.events: list = []
        self.calls: dict = {}  # step → model calls so far

    def _row(self, e, status: str, reason: str = "", **fields) -> None:
        """The step's row, made on its first event and updated by the later ones."""
        row = self.rows.get(e.step) or StepRow(e.run_id, e.step, status, reason, None, e.time, 0.0)
        self.rows[e.step] = row._replace(status=status, **({"reason": reason} if reason else {}), **fields)

    def __call__(self, e: ev.Event) -> None:
        e = e.redacted()  # state.db never holds a secret
        self.events.append(EventRow(e.run_id, len(self.events), e.time, e.type,
                                    json.dumps(e.to_dict(), default=str)))
        if isinstance(e, ev.RunStarted):
            # a -p value may be a token: the command line is stored without secrets
            self.history.start_run(e.run_id, e.pipeline, e.file, [redact(a) for a in self.argv])
        elif isinstance(e, ev.StepStarted):
            self._row(e, "running", word(e.reasons), duration=None)
        elif isinstance(e, ev.StepCached):
            self._row(e, "cached", word(e.reasons), key=e.key)
        elif isinstance(e, ev.StepCompleted):
            self._row(e, "ran", key=e.key, duration=e.duration)
        elif isinstance(e, ev.StepFailed):
            self._row(e, "failed", duration=e.duration, exit_code=e.exit_code, error=e.error)
        elif isinstance(e, ev.StepSkipped):
            self._row(e, "skipped", e.reason)
        elif isinstance(e, ev.StepCancelled):
            self._row(e, "cancelled", duration=e.duration, error=e.reason)
        elif isinstance(e, ev.ModelCalled):
            self.calls[e.step] = self.calls.get(e.step, 0) + 1
            self.history.add_usage(UsageRow(e.run_id, e.step, self.calls[e.step], e.provider, e.model,
                                            e.input_tokens, e.output_tokens, e.cached_tokens,
                                            e.cache_write_tokens, e.latency, e.retries, e.cost, e.time))
        elif isinstance(e, ev.RunFinished):
            summary = {"counts": e.counts, "duration": e.duration}
            self.history.finish_run(e.run_id, e.status, summary, list(self.rows.values()), self.events)


class LogFileReporter:
    """The plain lines, verbose, in .amelia/logs/RUN/run.log; and the steps' own logs
    beside it (STEP.log, what the step printed, raw) made safe to `cat` once the step is
    done: secrets redacted, escape sequences shown (safetext.sanitize_file)."""

    def __init__(self, path: str):
        self.path = path
        self.plain = None
        self.stopped: list = []  # cancelled steps: their processes may still be writing
        self.error = None  # a StoreProblem once run.log could not be written (a full disk)

    def _sanitize(self, step: str) -> None:
        from ..safetext import sanitize_file

        from ..store import Store

        log = os.path.join(os.path.dirname(self.path), Store.log_name(step))
        if os.path.isfile(log):
            sanitize_file(log)

    def __call__(self, e: ev.Event) -> None:
        if self.error is not None:
            return  # the log stops; the run goes on, and says why at its end
        try:
            self._write(e)
        except OSError as err:
            from ..store.problems import os_problem

            self.error = os_problem(self.path, err)

    def _write(self, e: ev.Event) -> None:
        if self.plain is None:
            self.file = open(self.path, "a", encoding="utf-8")
            self.plain = PlainReporter(self.file, verbose=True)
        self.plain(e)
        if isinstance(e, (ev.StepCompleted, ev.StepFailed)):
            self._sanitize(e.step)
        elif isinstance(e, ev.StepCancelled):
            self.stopped.append(e.step)
        elif isinstance(e, ev.RunFinished):
            self.file.close()
            for step in self.stopped:  # every process of the run has ended by now
                self._sanitize(step)


class EventsFileReporter:
    """The run's events as JSON lines in .amelia/logs/RUN/events.jsonl, as they happen (the
    bus has redacted them): what `amelia ui` follows to show a run started in a terminal
    live. A write that fails stops the file, never the run."""

    FILE = "events.jsonl"

    def __init__(self, path: str):
        self.path = path
        self.file = None
        self.failed = False

    def __call__(self, e: ev.Event) -> None:
        if self.failed:
            return
        try:
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(json.dumps(e.to_dict(), default=str) + "\n")
            self.file.flush()
            if isinstance(e, ev.RunFinished):
                self.file.close()
        except OSError:
            self.failed = True


def commit_summary(e) -> str | None:
    """One line for a target's commit; None when nothing changed (said only when verbose)."""
    from ..render import commit_words

    return commit_words(e.to_dict())


def index_summary(e) -> str:
    """One line for a source that was indexed: what changed, what it cost."""
    parts = [f"{n} {what}" for n, what in ((e.added, "added"), (e.changed, "changed"),
                                            (e.removed, "removed"), (e.unchanged, "unchanged"),
                                            (e.skipped, "skipped")) if n]
    files = ", ".join(parts) or "no documents"
    return (f"{files}; {e.chunks_embedded} chunk{'s' if e.chunks_embedded != 1 else ''} embedded "
            f"({e.chunks_total} in the index) in {fmt_seconds(e.seconds)}")
