"""A project with three real runs, shared by the web tests (made once per module: ~3 s).

Steps: `static` (a command, cached after the first run), `gen` (a command writing markdown
and JSON), `writer` (an agent on the fake OpenAI server, reading gen's output), `bad` (a
command that prints and fails). Run 1 makes everything (gen writes v1); run 2 changes
nothing (all cached but `bad`); then gen's command changes and run 3 reruns gen (v2) and
writer, `static` stays cached and `bad` fails again: a failed, a cached and an agent step
that ran, with tokens.

Import as `from web.story import Story, make_story` (tests/ is on sys.path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

EVIL = "<script>alert(1)</script> and <img src=x onerror=alert(2)>"


def pipeline(base_url: str, version: str) -> str:
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model, retries: 0}}
        agents:
          writer: {{system: You write short answers.}}
        steps:
          static:
            run: "mkdir -p build && echo static > build/static.txt"
            outputs: [build/static.txt]
          gen:
            description: Notes and data for the writer
            run: "mkdir -p build && printf '# Notes {version}\\n\\nSome *text* {EVIL}\\n' > build/notes.md && echo '{{\\"version\\":\\"{version}\\",\\"n\\":[1,2]}}' > build/data.json"
            outputs: [build/notes.md, build/data.json]
          writer:
            agent: writer
            inputs: [build/notes.md]
            prompt: Summarise the notes.
            output: build/answer.md
          bad:
            run: "echo first line of the log; echo 'sk-live-not-a-secret <b>bold</b>'; echo oops >&2; exit 3"
            needs: [gen]
        """)


@dataclass
class Story:
    root: Path
    env: dict
    runs: list  # run ids, oldest first

    def amelia(self, *args, check=None) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "amelia", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def store(self):
        from amelia.store import Store

        return Store(str(self.root))

    def pipeline(self):
        from amelia import api

        return api.validate(str(self.root / "amelia.yaml"))


ANSWER = "## The answer\n\nA *summary* with " + EVIL + "\n\n```json\n{\"k\": 1}\n```\n"


def make_story(base: Path, server) -> Story:
    """The three runs in a new project under `base`, the agent answering through `server`."""
    root = base / "proj"
    root.mkdir()
    home = base / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1", "OPENAI_API_KEY": "sk-test-key-123456"}
    story = Story(root, env, [])
    (root / "amelia.yaml").write_text(pipeline(server.base_url, "v1"))
    for _ in range(2):
        story.amelia("run", check=1)
    (root / "amelia.yaml").write_text(pipeline(server.base_url, "v2"))
    story.amelia("run", check=1)
    story.runs = [r["id"] for r in reversed(json.loads(story.amelia("runs", "--json", check=0).stdout))]
    assert len(story.runs) == 3
    return story


EVIL_ID = "<img src=x onerror=alert(3)>/<script>alert(4)</script>"


def synthetic(root: Path, run_id: str = "20260101-000000-beef"):
    """A store with one run written directly (as an older Amelia, or a hostile state.db,
    could have): a step id and outputs full of markup, a priced model call, a binary and
    a directory output, and a step whose object is gone. Returns the open Store."""
    from amelia.store import EventRow, Record, Store, StepRow, UsageRow

    store = Store(str(root))
    h = store.history
    h.start_run(run_id, "evil <pipeline>", "amelia.yaml", ["run", "-p", "x=<b>"])
    put = store.objects.put_bytes
    md = put(("# Evil\n\n" + EVIL + "\n\n[click](javascript:alert(5)) [ok](https://example.org)\n"
              "\x1b]0;title\x07 escape\n").encode())
    js = put(b'{"b": [1, 2], "a": "' + EVIL.replace('"', '\\"').encode() + b'"}')
    binary = put(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    tree = store.objects.put_bytes(b'{"x.txt":"' + put(b"x").encode() + b'"}')
    store.records.save(Record("k-evil", EVIL_ID, {"out/evil.md": md, "out/evil.json": js},
                              {"kind": "agent"}, run_id, 1.5))
    store.records.save(Record("k-bin", "pics", {"out/pic.png": binary, "out/dir/": "tree-" + tree},
                              {"kind": "run", "upstream": {EVIL_ID: {}}}, run_id, 0.2))
    store.records.save(Record("k-gone", "gone", {"out/gone.txt": "0" * 64}, {"kind": "run"}, run_id, 0.1))
    h.add_usage(UsageRow(run_id, EVIL_ID, 1, "anthropic", "claude-x", 1000, 200, 0, 0, 1.0, 0, 0.0125))
    h.add_usage(UsageRow(run_id, EVIL_ID, 2, "anthropic", "claude-x", 500, 100, 0, 0, 1.0, 0, 0.0075))
    steps = [StepRow(run_id, EVIL_ID, "ran", "new step <b>", "k-evil", 1.0, 1.5),
             StepRow(run_id, "pics", "ran", "upstream changed", "k-bin", 2.0, 0.2),
             StepRow(run_id, "gone", "cached", "", "k-gone", 3.0, 0.0),
             StepRow(run_id, "boom", "failed", "new step", None, 4.0, 0.3, 1,
                     "command failed: " + EVIL)]
    events = [EventRow(run_id, 0, 1.0, "model_called",
                       '{"type": "model_called", "step": "' + EVIL_ID.replace('"', '\\"') +
                       '", "provider": "anthropic", "model": "claude-x"}')]
    h.finish_run(run_id, "failed", {"counts": {}}, steps, events)
    return store
