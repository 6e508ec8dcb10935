"""What `amelia watch` shows: plain lines (not a terminal), JSON lines (--json), or a rich
live view (a terminal).

Each view gets the runs' events (it is the run's display reporter) and the watch's own
news: the changes that started a run, a pipeline file that changed or is invalid, the wait.
`out` takes the few lines a run writes itself (a no-op run's summary, outputs removed).
As in live.py, every text from outside is `safetext.safe` first and rich never parses markup.
"""

from __future__ import annotations

import json
import sys
import time

from .. import events as ev
from ..reasons import word
from ..render import fmt_seconds, summary_line
from ..safetext import escape_line, safe
from . import JsonReporter, PlainReporter

SHOW_PATHS = 5  # changed paths named in one line; the rest are counted


def paths_text(paths) -> str:
    paths = sorted(paths)
    text = ", ".join(escape_line(p) for p in paths[:SHOW_PATHS])
    return text + (f" and {len(paths) - SHOW_PATHS} more" if len(paths) > SHOW_PATHS else "")


def _changes(paths) -> str:
    n = len(paths)
    return f"saw {n} change{'s' if n != 1 else ''}: {paths_text(paths)}"


class WatchLines:
    """Plain lines: the run's (PlainReporter) and `watch   ...` lines between runs."""

    def __init__(self, stream=None, verbose: bool = False, errors=None):
        self.out = stream or sys.stdout
        self.errors = errors or sys.stderr
        self.plain = PlainReporter(self.out, verbose)

    def __call__(self, e: ev.Event) -> None:
        self.plain(e)

    def line(self, text: str) -> None:
        self.out.write(f"watch   {text}\n")
        self.out.flush()

    def started(self, file: str, steps: int) -> None:
        self.line(f"{escape_line(file)}: {steps} step{'s' if steps != 1 else ''}; Ctrl-C stops")

    def changes(self, paths) -> None:
        self.line(_changes(paths))

    def again(self, paths) -> None:
        self.line(f"again: {len(paths)} file{'s' if len(paths) != 1 else ''} changed during the run"
                  + (f": {paths_text(paths)}" if paths else ""))

    def reloaded(self, file: str, changed: list, steps: int = 0) -> None:
        what = (f"{len(changed)} step{'s' if len(changed) != 1 else ''} changed: {paths_text(changed)}"
                if changed else "no step changed")
        self.line(f"{escape_line(file)} reloaded; {what}")

    def error(self, e) -> None:
        from ..api import report_error

        self.out.flush()
        report_error(e, False, self.errors)
        self.errors.flush()

    def waiting(self) -> None:
        self.line("waiting for changes")

    def finished(self, result: dict | None, seconds: float) -> None:
        pass  # the run's summary line said it

    def close(self) -> None:
        self.out.flush()


class WatchJson(WatchLines):
    """JSON lines: every event, and one object per watch news (`watch_changes`, ...)."""

    def __init__(self, stream=None, verbose: bool = False):
        super().__init__(stream, verbose)
        self.json = JsonReporter(self.out)

    def __call__(self, e: ev.Event) -> None:
        self.json(e)

    def emit(self, kind: str, **fields) -> None:
        self.out.write(json.dumps({"type": kind, "time": time.time(), **fields}) + "\n")
        self.out.flush()

    def started(self, file: str, steps: int) -> None:
        self.emit("watch_started", file=file, steps=steps)

    def changes(self, paths) -> None:
        self.emit("watch_changes", paths=sorted(paths))

    def again(self, paths) -> None:
        self.emit("watch_changes", paths=sorted(paths), during_run=True)

    def reloaded(self, file: str, changed: list, steps: int = 0) -> None:
        self.emit("watch_reloaded", file=file, changed_steps=sorted(changed), steps=steps)

    def error(self, e) -> None:
        self.emit("watch_error", error=e.to_dict())

    def waiting(self) -> None:
        self.emit("watch_waiting")


STATE_STYLE = {"ran": ("ok", "green"), "cached": ("cached", "dim"), "failed": ("FAILED", "red bold"),
               "skipped": ("skipped", "yellow"), "cancelled": ("stopped", "yellow"),
               "running": ("running", "cyan"), "pending": ("pending", "dim")}
RESULT_STYLE = {"ok": "green", "failed": "red", "interrupted": "yellow", "cancelled": "yellow"}


class WatchView:
    """A rich live view that stays up while watching: the last run's result and time, what
    changed, each step that did something (running ones with a spinner), the wait.
    Failures and errors are printed above it, so they stay on screen."""

    def __init__(self, verbose: bool = False):
        from rich.console import Console

        self.console = Console(highlight=False, emoji=False)
        self.verbose = verbose
        self.file = ""
        self.total = 0
        self.steps: dict = {}  # step → (state, seconds or start time, why)
        self.last = None  # (summary text, status, when)
        self.changed: list = []
        self.status = "starting"
        self.live = None
        self.out = _ViewText(self)
        self.fallback = None  # WatchLines, once the view has failed
        self.ticking = None

    # -- the watch's news ---------------------------------------------------------------
    def started(self, file: str, steps: int) -> None:
        from rich.live import Live

        self.file, self.total = escape_line(file), steps
        # Drawn on each piece of news, and 8 times a second only while a run goes (spinners,
        # timers): an idle watch costs nothing to draw.
        self.live = Live(self._render(), console=self.console, auto_refresh=False,
                         get_renderable=self._render, redirect_stdout=False, redirect_stderr=False)
        self._guard(self.live.start)

    def changes(self, paths) -> None:
        self.changed = sorted(paths)
        self.refresh()

    def again(self, paths) -> None:
        self.changed = sorted(paths)
        self.refresh()

    def reloaded(self, file: str, changed: list, steps: int = 0) -> None:
        self.total = steps or self.total
        self.print(("reloaded", "cyan"), " ", escape_line(file), "  ",
                   (f"{len(changed)} step{'s' if len(changed) != 1 else ''} changed" if changed
                    else "no step changed", "dim"))

    def error(self, e) -> None:
        self.print((safe(e.render()), "red"))
        self.status = "waiting for a fix"
        self.refresh()

    def waiting(self) -> None:
        self.status = "waiting for changes"
        self.refresh()

    def refresh(self) -> None:
        if self.live is not None:
            self._guard(self.live.refresh)

    def _tick(self, on: bool) -> None:
        """A thread that redraws 8 times a second while a run goes."""
        if not on:
            self.ticking = None
            return
        import threading

        token = self.ticking = object()

        def tick():
            while self.ticking is token and self.fallback is None:
                self.refresh()
                time.sleep(0.125)

        threading.Thread(target=tick, name="amelia-watch-view", daemon=True).start()

    def finished(self, result: dict | None, seconds: float) -> None:
        if result is not None and "counts" in result:
            status = result.get("status", "ok")
            self.last = (_short(summary_line(status, result["counts"], seconds, "")), status,
                         time.strftime("%H:%M:%S"))
        self.refresh()

    def close(self) -> None:
        self.ticking = None
        if self.live is not None:
            self._guard(self.live.stop)

    # -- the runs' events ---------------------------------------------------------------
    def __call__(self, e: ev.Event) -> None:
        if self.fallback is not None:
            self.fallback(e)
            return
        try:
            self.handle(e)
        except Exception as error:  # a display error is no reason to stop the steps
            self._give_way(error)
            self.fallback(e)

    def handle(self, e: ev.Event) -> None:
        step = escape_line(getattr(e, "step", ""))
        if isinstance(e, ev.RunStarted):
            self.status = "running"
            self.steps = {escape_line(s[0]): ("pending", 0.0, "") for s in e.steps}
            self._tick(True)
        elif isinstance(e, ev.StepStarted):
            self.steps[step] = ("running", time.monotonic(), safe(word(e.reasons), newlines=False))
        elif isinstance(e, ev.StepProgress):
            state = self.steps.get(step)
            if state and state[0] == "running":
                self.steps[step] = (state[0], state[1], safe(e.message, newlines=False))
        elif isinstance(e, ev.StepCached):
            self.steps[step] = ("cached", 0.0, safe(word(e.reasons), newlines=False))
        elif isinstance(e, ev.StepCompleted):
            self.steps[step] = ("ran", e.duration, self.steps.get(step, ("", 0, ""))[2])
        elif isinstance(e, ev.StepFailed):
            self.steps[step] = ("failed", e.duration, safe(e.error, newlines=False))
            extra = (" ", (f"(log: {safe(e.log, newlines=False)})", "dim")) if e.log else ()
            self.print(("FAILED", "red bold"), "  ", step, "  ", safe(e.error), *extra)
            if e.tail:
                self.print((safe(e.tail), "dim"))
        elif isinstance(e, ev.StepSkipped):
            self.steps[step] = ("skipped", 0.0, safe(e.reason, newlines=False))
        elif isinstance(e, ev.StepCancelled):
            self.steps[step] = ("cancelled", e.duration, safe(e.reason, newlines=False))
        elif isinstance(e, ev.StepWarning):
            self.print(("warning", "yellow"), " ", step, "  ", safe(e.message))
        elif isinstance(e, ev.SourceIndexed):
            from . import index_summary

            self.print(("indexed", "cyan"), " ", step, "  ", (safe(index_summary(e)), "dim"))
        elif isinstance(e, ev.TargetCommitted):
            from . import commit_summary

            text = commit_summary(e)
            if text:
                self.print(("FAILED", "bold red") if e.error else ("commit", "magenta"), "  ",
                           "target:" + safe(e.target, newlines=False), "  ", safe(text))
        elif isinstance(e, ev.RunFinished):
            self.last = (_short(summary_line(e.status, e.counts, e.duration, "")), e.status,
                         time.strftime("%H:%M:%S"))
            self._tick(False)
        self.refresh()

    # -- drawing --------------------------------------------------------------------------
    def print(self, *parts) -> None:
        from .live import _line

        if self.fallback is not None:
            self.fallback.out.write("".join(p if isinstance(p, str) else p[0] for p in parts) + "\n")
            return
        self._guard(lambda: self.console.print(_line(*parts)))

    def _render(self):
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table

        from .live import _line

        head = [_line(("amelia watch", "bold"), "  ", self.file, "  ",
                      (f"{self.total} steps · Ctrl-C stops", "dim"))]
        if self.last is not None:
            text, status, when = self.last
            head.append(_line(("last run  ", "dim"), (text, RESULT_STYLE.get(status, "")),
                              (f"  at {when}", "dim")))
        if self.changed:
            head.append(_line(("changed   ", "dim"), paths_text(self.changed)))
        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        shown = [(s, v) for s, v in list(self.steps.items()) if self.verbose or v[0] not in ("cached", "pending")]
        rows = max(3, self.console.size.height - 6)
        for sid, (state, t, why) in shown[-rows:]:
            label, style = STATE_STYLE.get(state, (state, ""))
            mark = Spinner("dots") if state == "running" else ""
            secs = f"{now - t:4.1f}s" if state == "running" else (fmt_seconds(t) if t else "")
            table.add_row(mark, _line((label, style)), _line((sid, "bold")), secs, _line((why, "dim")))
        cached = sum(1 for v in self.steps.values() if v[0] == "cached")
        tail = f"{cached} cached · " if cached and not self.verbose else ""
        return Group(*head, table, _line((f"{tail}{self.status}", "dim")))

    def _guard(self, fn) -> None:
        if self.fallback is not None:
            return
        try:
            fn()
        except Exception as error:
            self._give_way(error)

    def _give_way(self, error: Exception) -> None:
        from .live import stop_failed_view

        stop_failed_view(self.live, error)
        self.fallback = WatchLines(sys.stdout, self.verbose)
        self.fallback.plain.width = max((len(s) for s in self.steps), default=0)


class _ViewText:
    """`out` of the live view: what a run writes itself is printed above the view."""

    def __init__(self, view: WatchView):
        self.view = view
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.view.print((safe(line, newlines=False), "dim"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def _short(summary: str) -> str:
    """A run's summary line without its `amelia: ` and its run id."""
    text = summary.removeprefix("amelia: ")
    return safe(text.rsplit(" (run ", 1)[0], newlines=False)


def make_view(as_json: bool, verbose: bool, stream=None):
    """The view the options and the terminal ask for."""
    from ..api import ReaderMayLeave, _is_tty

    stream = ReaderMayLeave(stream or sys.stdout)
    if as_json:
        return WatchJson(stream, verbose)
    if _is_tty(stream):
        return WatchView(verbose)
    return WatchLines(stream, verbose)
