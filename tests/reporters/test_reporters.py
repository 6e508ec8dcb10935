"""amelia.reporters in process: the plain lines (golden files), JSON lines, the run record
(a real store) and the log file, fed one fixed sequence of events."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from amelia import events as ev
from amelia.reasons import Reason
from amelia.reporters import JsonReporter, LogFileReporter, PlainReporter, RecordReporter
from amelia.store import StepRow, Store
from conftest import assert_golden

GOLDEN = Path(__file__).resolve().parent / "golden"
RUN = "20250102-030405-abcd"


def events() -> list:
    """A run of every kind of step, at fixed times."""
    t = iter(1_700_000_000.0 + i for i in range(100))
    return [
        ev.RunStarted(RUN, "demo", "amelia.yaml", (
            ("build", "run", (Reason("input_changed", "src/a.py"),)),
            ("docs", "cached", (Reason("output_missing", "build/docs.md"),)),
            ("lint", "cached", ()),
            ("test", "blocked", (Reason("after", "build"),)),
            ("package-all", "blocked", (Reason("after", "test"),)),
            ("deploy", "run", (Reason("new_step"),)),
        ), 2, time=next(t)),
        ev.StepStarted(RUN, "build", tuple(Reason("input_changed", f"src/{c}.py") for c in "abcde")
                       + (Reason("param_changed", "goal"),), time=next(t)),
        ev.StepCached(RUN, "docs", (Reason("output_missing", "build/docs.md"),), "key-docs", time=next(t)),
        ev.StepCached(RUN, "lint", (), "key-lint", time=next(t)),
        ev.StepProgress(RUN, "build", "compiling 3 files", time=next(t)),
        ev.StepCompleted(RUN, "build", 1.234, {"build/app": "ab" * 32}, "key-build", time=next(t)),
        ev.StepStarted(RUN, "test", (Reason("upstream_changed", "build"),), time=next(t)),
        ev.StepStarted(RUN, "deploy", (Reason("new_step"),), time=next(t)),
        ev.StepFailed(RUN, "test", "command exited with code 2", 75.5, 2, ".amelia/logs/x/test.log",
                      "FAILED test_one\n2 failed, 10 passed", time=next(t)),
        ev.StepSkipped(RUN, "package-all", "upstream test failed", time=next(t)),
        ev.ModelCalled(RUN, "deploy", "openai", "gpt-fake", 100, 20, 5, 0, 0.5, 1, 0.0012, time=next(t)),
        ev.ModelCalled(RUN, "deploy", "openai", "gpt-fake", 50, 10, 0, 0, 0.25, 0, None, time=next(t)),
        ev.StepCancelled(RUN, "deploy", "interrupted", 0.75, time=next(t)),
        ev.RunFinished(RUN, "interrupted", {"ran": 1, "cached": 2, "failed": 1, "skipped": 1, "cancelled": 1},
                       78.25, time=next(t)),
    ]


def plain(verbose: bool) -> str:
    out = io.StringIO()
    reporter = PlainReporter(out, verbose=verbose)
    for e in events():
        reporter(e)
    return out.getvalue()


# -- PlainReporter ---------------------------------------------------------------------

def test_plain_lines_for_a_run():
    assert_golden(plain(verbose=False), GOLDEN / "plain.txt")


def test_plain_lines_verbose_add_quiet_cached_steps_and_progress():
    quiet, loud = plain(False).splitlines(), plain(True).splitlines()
    extra = [line for line in loud if line not in quiet]
    assert extra == ["cached  lint", "...     build        compiling 3 files"]
    assert [line for line in loud if line in quiet] == quiet


def test_plain_lines_verbose():
    assert_golden(plain(verbose=True), GOLDEN / "plain_verbose.txt")


def test_plain_pads_step_ids_to_the_longest_in_the_run():
    out = io.StringIO()
    r = PlainReporter(out)
    r(ev.RunStarted("r", "p", "f", (("a", "run", ()), ("much-longer", "run", ())), 1))
    r(ev.StepCompleted("r", "a", 0.5))
    r(ev.StepSkipped("r", "much-longer", "upstream a failed"))
    assert out.getvalue() == ("ok      a            0.50s\n"
                              "skipped much-longer  upstream a failed\n")


def test_plain_without_run_started_does_not_pad():
    out = io.StringIO()
    PlainReporter(out)(ev.StepCancelled("r", "s"))
    assert out.getvalue() == "stopped s  cancelled\n"


# -- the log file ----------------------------------------------------------------------

def test_the_log_file_has_the_verbose_lines_and_is_closed_at_run_finished(tmp_path):
    path = tmp_path / "run.log"
    reporter = LogFileReporter(str(path))
    for e in events():
        reporter(e)
    assert reporter.file.closed
    logged, expected = path.read_text().splitlines(), plain(verbose=True).splitlines()
    assert len(logged) == len(expected)
    assert all(a.endswith(b) for a, b in zip(logged, expected))  # a time before each may come


# -- JsonReporter ----------------------------------------------------------------------

def test_json_lines_one_object_per_event_with_reasons_as_data():
    out = io.StringIO()
    reporter = JsonReporter(out)
    evs = events()
    for e in evs:
        reporter(e)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(evs)
    objs = [json.loads(line) for line in lines]
    assert [o["type"] for o in objs] == [
        "run_started", "step_started", "step_cached", "step_cached", "step_progress", "step_completed",
        "step_started", "step_started", "step_failed", "step_skipped", "model_called", "model_called",
        "step_cancelled", "run_finished"]
    assert all(o["run_id"] == RUN for o in objs)
    assert [o["time"] for o in objs] == [e.time for e in evs]
    started = objs[0]
    assert started["pipeline"] == "demo" and started["jobs"] == 2
    assert started["steps"][0] == ["build", "run", [{"kind": "input_changed", "subject": "src/a.py"}]]
    assert started["steps"][2] == ["lint", "cached", []]
    assert objs[1]["reasons"][-1] == {"kind": "param_changed", "subject": "goal"}
    assert len(objs[1]["reasons"]) == 6  # data: every reason, none cut as for people
    assert objs[2] == {"run_id": RUN, "time": evs[2].time, "step": "docs", "key": "key-docs",
                       "reasons": [{"kind": "output_missing", "subject": "build/docs.md"}],
                       "type": "step_cached"}
    assert objs[5]["outputs"] == {"build/app": "ab" * 32} and objs[5]["duration"] == 1.234
    assert objs[8]["exit_code"] == 2 and objs[8]["tail"] == "FAILED test_one\n2 failed, 10 passed"
    assert objs[11]["cost"] is None
    assert objs[-1]["status"] == "interrupted" and objs[-1]["counts"]["cancelled"] == 1


# -- RecordReporter --------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    yield s
    s.close()


def test_the_run_record_has_a_row_per_step_and_the_events(store):
    reporter = RecordReporter(store.history, ["amelia", "run", "-j", "2"])
    evs = events()
    for e in evs[:-1]:
        reporter(e)
    run = store.history.run(RUN)
    assert run["status"] == "running" and run["argv"] == ["amelia", "run", "-j", "2"]
    assert store.history.steps(RUN) == [] and store.history.events(RUN) == []  # all at the end
    reporter(evs[-1])

    run = store.history.run(RUN)
    assert run["status"] == "interrupted" and run["pipeline"] == "demo" and run["file"] == "amelia.yaml"
    assert run["summary"] == {"counts": {"ran": 1, "cached": 2, "failed": 1, "skipped": 1, "cancelled": 1},
                              "duration": 78.25}
    t0 = evs[0].time
    rows = {r.step: r for r in store.history.steps(RUN)}
    assert rows == {
        "build": StepRow(RUN, "build", "ran",
                         "input src/a.py changed; input src/b.py changed; input src/c.py changed; "
                         "param goal changed; 2 more inputs changed", "key-build", t0 + 1, 1.234),
        "docs": StepRow(RUN, "docs", "cached", "restore build/docs.md", "key-docs", t0 + 2, 0.0),
        "lint": StepRow(RUN, "lint", "cached", "", "key-lint", t0 + 3, 0.0),
        "test": StepRow(RUN, "test", "failed", "upstream build changed", None, t0 + 6, 75.5, 2,
                        "command exited with code 2"),
        "deploy": StepRow(RUN, "deploy", "cancelled", "new step", None, t0 + 7, 0.75, None, "interrupted"),
        "package-all": StepRow(RUN, "package-all", "skipped", "upstream test failed", None, t0 + 9, 0.0),
    }
    saved = store.history.events(RUN)
    assert [(e.seq, e.type) for e in saved] == [(i, e.type) for i, e in enumerate(evs)]
    assert [e.time for e in saved] == [e.time for e in evs]
    assert json.loads(saved[2].data)["reasons"] == [{"kind": "output_missing", "subject": "build/docs.md"}]


def test_model_calls_are_usage_rows_at_once_numbered_per_step(store):
    reporter = RecordReporter(store.history, [])
    evs = events()
    calls = [e for e in evs if isinstance(e, ev.ModelCalled)]
    reporter(evs[0])
    reporter(calls[0])
    assert store.history.usage_by_step(RUN) == {"deploy": {
        "calls": 1, "input_tokens": 100, "output_tokens": 20, "cached_tokens": 5, "retries": 1,
        "cost": 0.0012}}  # written before the run ends: a crash keeps what was spent
    reporter(calls[1])
    reporter(ev.ModelCalled(RUN, "other", "anthropic", "claude-fake", 7, 3, 0, 2, 0.1, 0, 0.5))
    usage = store.history.usage_by_step(RUN)
    assert usage["deploy"]["calls"] == 2 and usage["deploy"]["input_tokens"] == 150
    assert usage["other"]["calls"] == 1
    with store.state.lock:
        seqs = store.state.conn.execute(
            "SELECT step, seq, provider, model, latency, created FROM usage ORDER BY step, seq").fetchall()
    assert seqs == [("deploy", 1, "openai", "gpt-fake", 0.5, calls[0].time),
                    ("deploy", 2, "openai", "gpt-fake", 0.25, calls[1].time),
                    ("other", 1, "anthropic", "claude-fake", 0.1, seqs[2][5])]


def test_a_step_cancelled_before_it_started_has_a_row_too(store):
    reporter = RecordReporter(store.history, [])
    reporter(ev.RunStarted("r2", "p", "f", (("a", "run", ()),), 1))
    reporter(ev.StepCancelled("r2", "a", "cancelled"))
    reporter(ev.RunFinished("r2", "cancelled", {"cancelled": 1}, 0.1))
    [row] = store.history.steps("r2")
    assert (row.step, row.status, row.reason, row.error, row.duration) == (
        "a", "cancelled", "", "cancelled", 0.0)


# -- text from outside ------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _forget_secrets():
    from amelia.safetext import forget_secrets

    forget_secrets()  # no key another test registered hides text in these lines
    yield
    forget_secrets()


HOSTILE_KEY = "sk-hostile-" + "Zr8Wq2Lp6Vn4Kx0Y" * 5
HOSTILE = [
    ev.RunStarted(RUN, "demo", "amelia.yaml", (("a", "run", ()), ("b", "run", ())), 1),
    ev.StepStarted(RUN, "a", (Reason("input_changed", "in/\x1b[2Jx.txt"),)),
    ev.StepProgress(RUN, "a", "\x1b]0;pwned\x07 [bold]received"),
    ev.StepFailed(RUN, "a", f"server error (500): [/bold] :smile: {HOSTILE_KEY}", 1.0, 1,
                  ".amelia/logs/x/a.log", "\x1b]0;pwned\x07\x1b[2J[/bold]\r\nline\rover"),
    ev.StepSkipped(RUN, "b", "upstream a failed [/]"),
    ev.RunFinished(RUN, "failed", {"failed": 1, "skipped": 1}, 1.0),
]


def _assert_shown_safely(out: str) -> None:
    for raw in ("\x1b]0;pwned", "\x1b[2J", "\x07", "\r"):
        assert raw not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J[/bold]" in out and "line\\rover" in out
    assert "[/bold] :smile:" in out and "in/\\x1b[2Jx.txt" in out
    assert HOSTILE_KEY[:20] not in out and HOSTILE_KEY[-20:] not in out


def test_plain_lines_show_escape_sequences_and_hide_keys():
    from amelia.safetext import add_secret

    add_secret(HOSTILE_KEY)
    out = io.StringIO()
    reporter = PlainReporter(out, verbose=True)
    for e in HOSTILE:
        reporter(e)
    _assert_shown_safely(out.getvalue())


def test_the_live_view_takes_markup_and_escape_sequences_as_text():
    from rich.console import Console

    from amelia.reporters.live import LiveReporter
    from amelia.safetext import add_secret

    add_secret(HOSTILE_KEY)
    out = io.StringIO()
    reporter = LiveReporter(verbose=True)
    reporter.console = Console(file=out, force_terminal=True, width=300, highlight=False,
                               emoji=False, color_system=None)
    for e in HOSTILE:
        reporter(e)
        if isinstance(e, (ev.StepStarted, ev.StepProgress)):
            reporter.console.print(reporter._render())  # what the running step's row shows
    assert reporter.fallback is None  # no MarkupError: nothing was parsed as markup
    text = out.getvalue()
    for own in ("\x1b[?25l", "\x1b[?25h", "\x1b[2K", "\x1b[1A", "\r"):  # rich's, for the live rows
        text = text.replace(own, "")
    assert "\x1b" not in text
    _assert_shown_safely(text)
    assert "\\x1b]0;pwned\\x07 [bold]received" in text and "[/]" in text


def test_a_live_view_that_breaks_gives_way_to_plain_lines(capsys):
    from amelia.reporters.live import LiveReporter

    class Broken(LiveReporter):
        def handle(self, e):
            if isinstance(e, ev.StepFailed):
                raise RuntimeError("display broke")
            super().handle(e)

    reporter = Broken()
    for e in HOSTILE:
        reporter(e)
    out, err = capsys.readouterr()
    assert "the live view failed (RuntimeError: display broke); plain lines follow" in err
    assert "FAILED  a  server error (500)" in out and "amelia: FAILED:" in out


def test_the_bus_hands_subscribers_events_with_secrets_redacted(store):
    from amelia.safetext import REDACTED, add_secret

    add_secret(HOSTILE_KEY)
    seen = []
    bus = ev.Bus()
    bus.subscribe(seen.append)
    bus.subscribe(RecordReporter(store.history, []))
    for e in HOSTILE:
        bus.emit(e)
    failed = seen[3]
    assert HOSTILE_KEY not in failed.error and REDACTED in failed.error
    assert failed.tail == HOSTILE[3].tail  # only secrets change: the data stays data
    [row] = [r for r in store.history.steps(RUN) if r.step == "a"]
    assert REDACTED in row.error and HOSTILE_KEY[:12] not in row.error
    assert all(HOSTILE_KEY[:12] not in e.data for e in store.history.events(RUN))
