"""A rich live view for terminals: finished steps scroll by, running ones spin below.

Nothing here goes through rich markup: every line is a `Text` built from parts, and
every part that came from outside (a step's name, an error, a tail, a reason naming a
file) is `safetext.safe` first. A `[/bold]` in a server's error is then just text, and an
escape sequence a step printed is shown (`\\x1b]0;title`), never sent to the terminal.
A display that breaks anyway must not stop the run: the view gives way to plain lines.
"""

from __future__ import annotations

import sys
import time

from .. import events as ev
from ..reasons import word
from ..render import summary_line
from ..safetext import escape_line, safe

STATUS_STYLE = {"ok": "green", "failed": "red", "interrupted": "yellow", "cancelled": "yellow"}


def _line(*parts):
    """A Text from (text, style) pairs and plain strings; no markup is parsed."""
    from rich.text import Text

    return Text.assemble(*parts)


class LiveReporter:
    def __init__(self, verbose: bool = False):
        from rich.console import Console

        # No emoji codes (`:smile:` in a file name stays), no guessing of highlights.
        self.console = Console(highlight=False, emoji=False)
        self.verbose = verbose
        self.running: dict = {}
        self.live = None
        self.total = 0
        self.done = 0
        self.fallback = None  # PlainReporter, once the live view has failed

    def _render(self):
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        # a copy: the refresh thread renders while events change the running steps
        for step, (since, why) in list(self.running.items()):
            table.add_row(Spinner("dots"), _line((step, "bold")), f"{now - since:4.1f}s",
                          _line((why, "dim")))
        table.add_row("", _line((f"{self.done}/{self.total} steps", "dim")), "", "")
        return table

    def __call__(self, e: ev.Event) -> None:
        if self.fallback is not None:
            self.fallback(e)
            return
        try:
            self.handle(e)
        except Exception as error:  # a display error is no reason to stop the steps
            self._give_way(error, e)

    def _give_way(self, error: Exception, e: ev.Event) -> None:
        from . import PlainReporter

        stop_failed_view(self.live, error)
        self.fallback = PlainReporter(sys.stdout, self.verbose)
        if not isinstance(e, ev.RunStarted):
            self.fallback.width = max((len(s) for s in self.running), default=0)
        self.fallback(e)

    def handle(self, e: ev.Event) -> None:
        from rich.live import Live

        c = self.console
        step = escape_line(getattr(e, "step", ""))
        if isinstance(e, ev.RunStarted):
            self.total = len(e.steps)
            # No redirection of sys.stdout/stderr: rich prints a partial line written there
            # as markup, and what a library prints there is text from outside too.
            self.live = Live(self._render(), console=c, refresh_per_second=8, transient=True,
                             get_renderable=self._render, redirect_stdout=False,
                             redirect_stderr=False)
            self.live.start()
        elif isinstance(e, ev.StepStarted):
            self.running[step] = (time.monotonic(), safe(word(e.reasons), newlines=False))
        elif isinstance(e, ev.StepProgress):
            if step in self.running:
                self.running[step] = (self.running[step][0], safe(e.message, newlines=False))
        elif isinstance(e, ev.StepWarning):
            c.print(_line(("warning", "yellow"), " ", step, "  ", safe(e.message)))
        elif isinstance(e, ev.SourceIndexed):
            from . import index_summary

            c.print(_line(("indexed", "cyan"), " ", step, "  ", (safe(index_summary(e)), "dim")))
        elif isinstance(e, ev.TargetCommitted):
            from . import commit_summary

            text = commit_summary(e)
            if text:
                c.print(_line(("FAILED", "bold red") if e.error else ("commit", "magenta"),
                              "  ", "target:" + safe(e.target, newlines=False), "  ", safe(text)))
        elif isinstance(e, ev.StepCached):
            self.done += 1
            if self.verbose or e.reasons:
                c.print(_line(("cached", "dim"), "  ", step, "  ",
                              (safe(word(e.reasons)), "dim")))
        elif isinstance(e, ev.StepCompleted):
            self.running.pop(step, None)
            self.done += 1
            c.print(_line(("ok", "green"), "      ", step, "  ", (f"{e.duration:.2f}s", "dim")))
        elif isinstance(e, ev.StepFailed):
            self.running.pop(step, None)
            self.done += 1
            extra = (" ", (f"(log: {safe(e.log, newlines=False)})", "dim")) if e.log else ()
            c.print(_line(("FAILED", "red bold"), "  ", step, "  ", safe(e.error), *extra))
            if e.tail:
                c.print(_line((safe(e.tail), "dim")))
        elif isinstance(e, ev.StepSkipped):
            self.done += 1
            c.print(_line(("skipped", "yellow"), " ", step, "  ", (safe(e.reason), "dim")))
        elif isinstance(e, ev.StepCancelled):
            self.running.pop(step, None)
            self.done += 1
            c.print(_line(("stopped", "yellow"), " ", step, "  ", (safe(e.reason), "dim")))
        elif isinstance(e, ev.RunFinished):
            if self.live:
                self.live.stop()
            c.print(_line((safe(summary_line(e.status, e.counts, e.duration, e.run_id)),
                           STATUS_STYLE[e.status])))


def stop_failed_view(live, error: Exception) -> None:
    """A live display that failed: stopped (as far as it can be), and said once."""
    try:
        if live:
            live.stop()
    except Exception:
        pass
    sys.stderr.write(f"amelia: the live view failed ({type(error).__name__}: "
                     f"{safe(error, newlines=False)}); plain lines follow\n")
