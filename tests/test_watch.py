"""The pure parts of `amelia watch`: what is watched, what a change means, the debounce."""

from __future__ import annotations

import os

import pytest

from amelia import api
from amelia.watch.debounce import Debouncer
from amelia.watch.paths import ADDED, MODIFIED, Classifier, WatchSet, editor_temp

PIPELINE = """\
amelia: 1
name: w
params_files: [conf/params.yaml]
steps:
  fan:
    run: "cat data/*.txt > build/fan.txt"
    inputs: ["data/*.txt"]
    output: build/fan.txt
  deep:
    run: "cat docs/**/*.md > build/deep.txt"
    inputs: ["docs/**/*.md"]
    output: build/deep.txt
  one:
    run: "cat notes/a.txt build/fan.txt > out/one.txt"
    inputs: [notes/a.txt, build/fan.txt]
    output: out/one.txt
  tree:
    run: "ls assets > build/tree.txt"
    inputs: [assets]
    output: build/tree.txt
"""


@pytest.fixture
def pipeline(project):
    project.write("conf/params.yaml", "who: me\n")
    for rel in ("data/x.txt", "docs/guide/a.md", "notes/a.txt", "assets/logo.svg"):
        project.write(rel, "x\n")
    project.pipeline(PIPELINE)
    return api.validate(str(project.root / "amelia.yaml"))


def test_watch_set_holds_directories_of_what_steps_read(pipeline):
    ws = Classifier(pipeline).watch_set()
    # the pipeline's dir, the params file's, a literal input's: alone; a recursive glob's
    # literal prefix and a directory input: with all below
    assert ws.flat == {"", "conf", "data", "notes"}
    assert ws.deep == {"docs", "assets"}
    # build/ is only written by steps (build/fan.txt is an output): not watched
    assert "build" not in ws.flat | ws.deep


def test_watch_dirs_walk_deep_ones_and_stand_in_for_missing_ones(tmp_path):
    (tmp_path / "docs/a/b").mkdir(parents=True)
    (tmp_path / "docs/.git").mkdir()
    ws = WatchSet(str(tmp_path), frozenset({"notes/later"}), frozenset({"docs"}))
    dirs = ws.dirs()
    assert str(tmp_path / "docs/a/b") in dirs and str(tmp_path / "docs/.git") not in dirs
    assert str(tmp_path) in dirs  # notes/later is missing: its nearest ancestor is watched
    assert ws.wants_new_dir("notes") and ws.wants_new_dir("notes/later")
    assert ws.wants_new_dir("docs/new") and not ws.wants_new_dir("other")


def test_classify_ignores_store_outputs_temp_files_and_unread_paths(pipeline):
    c = Classifier(pipeline)
    root = pipeline.root
    raw = {(MODIFIED, os.path.join(root, p)) for p in (
        "data/x.txt", "docs/guide/a.md", "notes/a.txt", "assets/sub/icon.png",  # read
        "build/fan.txt", "out/one.txt",  # declared outputs
        ".amelia/state.db", ".git/index", "data/.#x.txt", "data/x.txt~", "data/.x.txt.swp",
        "data/4913", "data/y.tmp", "data/.~lock.x.txt#",  # store, git, editors
        "docs/wip.txt", "notes/b.txt", "data/sub/z.txt", "README.md")}  # nothing reads them
    got = c.classify(raw)
    assert got.data == {"data/x.txt", "docs/guide/a.md", "notes/a.txt", "assets/sub/icon.png"}
    assert got.pipeline == set()


def test_classify_sees_the_pipeline_and_the_files_it_was_resolved_from(pipeline):
    c = Classifier(pipeline)
    got = c.classify({(MODIFIED, os.path.join(pipeline.root, "amelia.yaml")),
                      (ADDED, os.path.join(pipeline.root, "conf/params.yaml"))})
    assert got.pipeline == {"amelia.yaml", "conf/params.yaml"} and not got.data


@pytest.mark.parametrize("name,temp", [
    ("a.txt~", True), (".#a.txt", True), ("#a.txt#", True), (".a.txt.swp", True), (".a.swx", True),
    ("4913", True), ("a.tmp", True), (".~lock.a.odt#", True), ("a.crdownload", True),
    ("a.txt___jb_tmp___", True), (".goutputstream-XYZ1", True),
    ("a.txt", False), ("49130", False), ("swp.md", False), ("notes.temperature", False)])
def test_editor_temp_names(name, temp):
    assert editor_temp(name) is temp


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_is_one_batch_after_the_quiet_time():
    clock = Clock()
    d = Debouncer(quiet=0.05, cap=1.0, clock=clock)
    assert d.wait() is None and not d.due()
    for i in range(50):  # a save every 10 ms: never quiet for 50 ms
        d.add({f"f{i % 3}"})
        clock.now += 0.01
        assert not d.due()
    assert d.wait() == pytest.approx(0.04)
    clock.now += 0.04
    assert d.due() and d.take() == {"f0", "f1", "f2"}
    assert not d.pending and d.wait() is None


def test_a_file_rewritten_without_pause_still_runs_at_the_cap():
    clock = Clock()
    d = Debouncer(quiet=0.05, cap=0.3, clock=clock)
    for _ in range(29):
        d.add({"log.txt"})
        clock.now += 0.01
    assert not d.due()
    d.add({"log.txt"})
    clock.now += 0.01
    assert d.due()  # 0.3 s after the first change, whatever follows
    d.take()
    d.add(())  # nothing: nothing pending
    assert not d.pending


def test_the_live_view_shows_states_the_last_run_and_what_changed():
    from io import StringIO

    from rich.console import Console

    from amelia import events as ev
    from amelia.reasons import Reason
    from amelia.reporters.watch_view import WatchView

    view = WatchView()
    view.console = Console(file=StringIO(), force_terminal=True, width=100, height=30)
    view.started("amelia.yaml", 3)
    view.changes(["src/a.txt"])
    view(ev.RunStarted("r1", "w", "amelia.yaml", (("a", "run", ()), ("b", "cached", ()), ("c", "run", ())), 2))
    view(ev.StepCached("r1", "b"))
    view(ev.StepStarted("r1", "a", (Reason("input_changed", "src/a.txt"),)))
    view(ev.StepCancelled("r1", "c", "input src/a.txt changed"))
    view(ev.RunFinished("r1", "ok", {"ran": 1, "cached": 1}, 0.5))
    view.waiting()
    out = Console(file=StringIO(), width=100, height=30)
    out.print(view._render())
    text = out.file.getvalue()
    view.close()
    assert "src/a.txt" in text and "done: 1 ran, 1 cached in 0.50s" in text
    assert "running" in text and "stopped" in text and "waiting for changes" in text
    assert "1 cached" in text and " b " not in text  # cached steps are counted, not listed


def test_runs_borrow_one_model_session_and_do_not_close_it(tmp_path):
    """The warm process keeps its provider clients: each run's context lends the one session,
    and the run's end leaves it open; an edited .env makes a new one (its keys changed)."""
    import os

    from amelia.watch.session import KeptModels
    from conftest import run_context

    kept = KeptModels()
    yaml = "amelia: 1\nsteps:\n  a: {run: 'true'}\n"
    with run_context(tmp_path, yaml, "run-1") as one:
        kept.lend(one)
        first = one.llm
        closed = []
        first._providers["probe"] = type("Probe", (), {"close": lambda self: closed.append(1)})()
        one.close()
        assert closed == []  # the run's end leaves the clients open
        del first._providers["probe"]
    with run_context(tmp_path, yaml, "run-2") as two:
        kept.lend(two)
        assert two.llm is first
        assert first.emit_usage == two.emit_usage  # usage belongs to the current run
        (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-new\n")
        os.utime(tmp_path / ".env", ns=(1, 1))
        assert two.llm is not first
