"""A rich live view for terminals: finished steps scroll by, running ones spin below."""

from __future__ import annotations

import time

from .. import events as ev
from ..reasons import word
from ..render import summary_line


class LiveReporter:
    def __init__(self, verbose: bool = False):
        from rich.console import Console

        self.console = Console(highlight=False)
        self.verbose = verbose
        self.running: dict = {}
        self.live = None
        self.total = 0
        self.done = 0

    def _render(self):
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for step, (since, why) in self.running.items():
            table.add_row(Spinner("dots"), f"[bold]{step}[/]", f"{now - since:4.1f}s", f"[dim]{why}[/]")
        table.add_row("", f"[dim]{self.done}/{self.total} steps[/]", "", "")
        return table

    def __call__(self, e: ev.Event) -> None:
        from rich.live import Live

        c = self.console
        if isinstance(e, ev.RunStarted):
            self.total = len(e.steps)
            self.live = Live(self._render(), console=c, refresh_per_second=8, transient=True,
                             get_renderable=self._render)
            self.live.start()
        elif isinstance(e, ev.StepStarted):
            self.running[e.step] = (time.monotonic(), word(e.reasons))
        elif isinstance(e, ev.StepProgress):
            if e.step in self.running:
                self.running[e.step] = (self.running[e.step][0], e.message)
        elif isinstance(e, ev.StepCached):
            self.done += 1
            if self.verbose or e.reasons:
                c.print(f"[dim]cached[/]  {e.step}  [dim]{word(e.reasons)}[/]")
        elif isinstance(e, ev.StepCompleted):
            self.running.pop(e.step, None)
            self.done += 1
            c.print(f"[green]ok[/]      {e.step}  [dim]{e.duration:.2f}s[/]")
        elif isinstance(e, ev.StepFailed):
            self.running.pop(e.step, None)
            self.done += 1
            extra = f" [dim](log: {e.log})[/]" if e.log else ""
            c.print(f"[red bold]FAILED[/]  {e.step}  {e.error}{extra}", markup=True)
            if e.tail:
                c.print(e.tail, style="dim", markup=False)
        elif isinstance(e, ev.StepSkipped):
            self.done += 1
            c.print(f"[yellow]skipped[/] {e.step}  [dim]{e.reason}[/]")
        elif isinstance(e, ev.StepCancelled):
            self.running.pop(e.step, None)
            self.done += 1
            c.print(f"[yellow]stopped[/] {e.step}  [dim]{e.reason}[/]")
        elif isinstance(e, ev.RunFinished):
            if self.live:
                self.live.stop()
            style = {"ok": "green", "failed": "red", "interrupted": "yellow", "cancelled": "yellow"}[e.status]
            c.print(summary_line(e.status, e.counts, e.duration, e.run_id), style=style, markup=False)
