"""`amelia watch` as a user runs it: a subprocess, files saved beside it, its JSON lines read.

Every wait polls with a deadline; nothing sleeps long. Long steps write their shell's pid
and their `sleep` child's, so the tests can tell a restarted step from one left running
and check that nothing is left after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.test_cli_signals import _alive, _none_alive

PIPELINE = """\
amelia: 1
name: watched
steps:
  a:
    run: "cat src/a.txt > out/a.txt"
    inputs: [src/a.txt]
    output: out/a.txt
  b:
    run: "cat src/b.txt > out/b.txt"
    inputs: [src/b.txt]
    output: out/b.txt
  c:
    run: "cat out/a.txt > out/c.txt"
    inputs: [out/a.txt]
    output: out/c.txt
"""


class Watch:
    """`amelia watch --json` in the project; its stdout lines parsed as they come."""

    def __init__(self, project, *args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "amelia", "watch", "--json", *args],
                                     cwd=project.root, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"type": "text", "text": line})

    def wait_for(self, pred, start: int = 0, timeout: float = 15.0):
        """The index of the first line from `start` on that satisfies pred."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.lines)):
                if pred(self.lines[i]):
                    return i
            if time.monotonic() > deadline or self.proc.poll() is not None and not self.reader.is_alive():
                raise AssertionError(f"not seen in time; lines: {self.lines[start:]}\n"
                                     f"stderr: {self._stderr()}")
            time.sleep(0.02)

    def idle(self, start: int = 0, timeout: float = 15.0) -> int:
        return self.wait_for(lambda e: e["type"] == "watch_waiting", start, timeout)

    def since(self, start: int, kind: str) -> list:
        return [e for e in self.lines[start:] if e["type"] == kind]

    def stop(self, sig=signal.SIGINT, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()


@pytest.fixture
def watched(project):
    project.write("src/a.txt", "a1\n")
    project.write("src/b.txt", "b1\n")
    (project.root / "out").mkdir()
    project.pipeline(PIPELINE)
    w = Watch(project)
    w.idle()  # the first run is over
    yield project, w
    w.stop(signal.SIGKILL)


def started(w, start) -> list:
    return [e["step"] for e in w.since(start, "step_started")]


def test_a_save_runs_the_affected_steps_only_and_outputs_never_retrigger(watched):
    project, w = watched
    assert set(started(w, 0)) == {"a", "b", "c"}
    mark = len(w.lines)
    project.write("src/a.txt", "a2\n")
    changes = w.wait_for(lambda e: e["type"] == "watch_changes", mark)
    assert w.lines[changes]["paths"] == ["src/a.txt"]
    end = w.idle(changes)
    assert sorted(started(w, changes)) == ["a", "c"]  # b reads nothing that changed
    assert project.read("out/c.txt") == "a2\n"
    # the steps wrote out/a.txt and out/c.txt (and .amelia/): no run follows
    time.sleep(0.6)
    assert w.since(end, "run_started") == [] and w.since(end, "watch_changes") == []


def test_an_atomic_save_is_seen_and_temp_files_are_not(watched):
    project, w = watched
    mark = len(w.lines)
    tmp = project.root / "src" / ".b.txt.swp"
    tmp.write_text("b2\n")
    os.replace(tmp, project.root / "src" / "b.txt")  # as vim, VS Code and most editors save
    (project.root / "src" / "b.txt~").write_text("backup")
    changes = w.wait_for(lambda e: e["type"] == "watch_changes", mark)
    assert w.lines[changes]["paths"] == ["src/b.txt"]
    w.idle(changes)
    assert started(w, changes) == ["b"]
    assert project.read("out/b.txt") == "b2\n"


def test_a_burst_of_saves_makes_at_most_two_runs(watched):
    project, w = watched
    mark = len(w.lines)
    for i in range(50):
        (project.root / "src" / "a.txt").write_text(f"a{i}\n")
    first = w.wait_for(lambda e: e["type"] == "watch_changes", mark)
    w.idle(first)
    time.sleep(0.3)  # anything still to come would have begun by now
    end = w.idle(first)
    assert 1 <= len(w.since(mark, "run_started")) <= 2
    assert len(w.since(end + 1, "run_started")) == 0
    assert project.read("out/c.txt") == "a49\n"


def test_a_second_run_gets_exit_4_at_once(watched):
    project, w = watched
    t0 = time.monotonic()
    proc = project.run("run")
    assert proc.returncode == 4, proc.stderr
    assert "another amelia process" in proc.stderr
    assert time.monotonic() - t0 < 5


LONG = """\
amelia: 1
name: long
steps:
  one:
    run: "echo $$ > one.pid; sleep 30 & echo $! > one.child; wait; cat src/one.txt > out/one.txt"
    inputs: [src/one.txt]
    output: out/one.txt
  two:
    run: "echo $$ > two.pid; sleep 31 & echo $! > two.child; wait; cat src/two.txt > out/two.txt"
    inputs: [src/two.txt]
    output: out/two.txt
"""


def _pid(project, name, timeout=15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        text = (project.root / name).read_text().strip() if (project.root / name).exists() else ""
        if text:
            return int(text)
        assert time.monotonic() < deadline, f"{name} never written"
        time.sleep(0.02)


def test_a_save_during_a_long_step_restarts_it_alone_and_ctrl_c_leaves_nothing(project):
    project.write("src/one.txt", "1\n")
    project.write("src/two.txt", "2\n")
    (project.root / "out").mkdir()
    project.pipeline(LONG)
    w = Watch(project, "-j", "2")
    try:
        w.wait_for(lambda e: e["type"] == "step_started" and e["step"] == "two")
        one, two = _pid(project, "one.pid"), _pid(project, "two.pid")
        one_child, two_child = _pid(project, "one.child"), _pid(project, "two.child")
        (project.root / "one.pid").write_text("")  # the restarted step writes its own
        (project.root / "one.child").write_text("")
        mark = len(w.lines)
        project.write("src/one.txt", "1b\n")
        stopped = w.wait_for(lambda e: e["type"] == "step_cancelled", mark)
        assert w.lines[stopped]["step"] == "one"
        assert w.lines[stopped]["reason"] == "input src/one.txt changed"
        w.wait_for(lambda e: e["type"] == "step_started" and e["step"] == "one", stopped)
        new_one = _pid(project, "one.pid")
        assert new_one != one and _none_alive([one, one_child])
        # the other long step was not touched: the same processes, never stopped or started again
        assert _alive(two) and _alive(two_child) and _pid(project, "two.pid") == two
        assert [e["step"] for e in w.since(mark, "step_cancelled")] == ["one"]
        assert "two" not in started(w, mark)
        new_child = _pid(project, "one.child")
        assert w.stop(signal.SIGINT) == 130
        assert _none_alive([new_one, new_child, two, two_child])
    finally:
        w.stop(signal.SIGKILL)


def test_an_invalid_edit_shows_the_located_error_then_a_fix_runs(watched):
    project, w = watched
    mark = len(w.lines)
    project.pipeline(PIPELINE.replace("    output: out/b.txt\n", "    outptu: out/b.txt\n"))
    err = w.wait_for(lambda e: e["type"] == "watch_error", mark)
    error = w.lines[err]["error"]
    assert "outptu" in error["message"] and (error["file"], error["line"]) == ("amelia.yaml", 11)
    w.wait_for(lambda e: e["type"] == "watch_waiting", err)
    assert w.since(mark, "run_started") == []  # the old pipeline has nothing to do
    assert w.proc.poll() is None  # still watching
    mark = len(w.lines)
    project.pipeline(PIPELINE.replace("cat src/b.txt > out/b.txt", "cat src/b.txt src/b.txt > out/b.txt"))
    reloaded = w.wait_for(lambda e: e["type"] == "watch_reloaded", mark)
    assert w.lines[reloaded]["changed_steps"] == ["b"]
    w.idle(reloaded)
    assert started(w, reloaded) == ["b"]
    assert project.read("out/b.txt") == "b1\nb1\n"
    assert w.stop(signal.SIGTERM) == 143


def test_plain_lines_when_not_a_terminal(project):
    project.write("src/a.txt", "a1\n")
    project.write("src/b.txt", "b1\n")
    (project.root / "out").mkdir()
    project.pipeline(PIPELINE)
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "watch"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()

    def seen(text, n=1, timeout=15.0):
        deadline = time.monotonic() + timeout
        while sum(text in line for line in lines) < n:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.02)

    try:
        seen("watch   waiting for changes")
        project.write("src/b.txt", "b2\n")
        seen("watch   waiting for changes", 2)
        text = "".join(lines)
        assert "watch   saw 1 change: src/b.txt\n" in text
        assert "run     b  input src/b.txt changed" in text
        assert text.count("amelia: done:") == 2
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130


def test_query_and_chat_can_read_the_index_beside_a_watch(project):
    """The embedded store is one process's at a time: a watch lets go of it between runs."""
    project.write("docs/a.md", "# Kettles\n\nThe kettle boils water in ninety seconds.\n")
    project.write("docs/b.md", "# Trains\n\nThe night train leaves at ten.\n")
    project.pipeline("""\
amelia: 1
sources:
  docs: {paths: ["docs/*.md"]}
steps:
  hits:
    retrieve: {source: docs, query: kettle}
    output: out/hits.json
""")
    w = Watch(project)
    try:
        mark = w.idle(timeout=60)
        r = project.run("query", "docs", "when does the train leave", "-k", "1", check=0)
        assert r.stdout.startswith("1. docs/b.md")
        project.write("docs/a.md", "# Kettles\n\nThe kettle now takes two minutes.\n")
        w.idle(w.wait_for(lambda e: e["type"] == "watch_changes", mark), timeout=60)
        assert "two minutes" in project.read("out/hits.json")
    finally:
        w.stop(signal.SIGKILL)
