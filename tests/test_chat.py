"""`amelia chat` end to end: a pseudo-terminal (and plain pipes) driving `python -m amelia
chat` against the fake OpenAI server on 127.0.0.1; and its parts (grounding, history,
streaming, the session list)."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import assert_golden
from fakes import FakeOpenAI, Reply

GOLDEN = Path(__file__).resolve().parent / "golden" / "chat"
ANSWER = "Paris is the capital of France."


def pipeline(base_url: str, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model, retries: 0}}
          mini: {{provider: openai, base_url: "{base_url}", model: gpt-4o-mini, retries: 0}}
        """) + extra + textwrap.dedent("""\
        steps:
          a:
            run: echo a > a.txt
            output: a.txt
        """)


@pytest.fixture
def oai():
    with FakeOpenAI(ANSWER) as srv:
        yield srv


@pytest.fixture
def chat_project(project, oai):
    project.pipeline(pipeline(oai.base_url))
    return project


# -- a pseudo-terminal ---------------------------------------------------------------------

# The child makes the terminal its controlling one (as a login shell does), so that Ctrl-C
# typed into it is the terminal's SIGINT to amelia, not a signal the test sends; and it
# takes SIGINT's default back (a shell without job control starts background jobs, e.g.
# `pytest &`, with SIGINT ignored, and an ignored signal stays ignored across exec).
CONTROLLING = ("import fcntl, os, signal, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
               "signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.executable, [sys.executable, '-m', 'amelia'] + sys.argv[1:])")


class Terminal:
    """amelia in a pseudo-terminal: type into it, wait for what it shows."""

    def __init__(self, root: Path, *args, env: dict | None = None):
        self.master, slave = os.openpty()
        full_env = dict(os.environ, TERM="xterm", COLUMNS="120", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-c", CONTROLLING, "chat", *args], cwd=root,
                                     env=full_env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for_line_editing(self, timeout: float = 10.0) -> None:
        """Until readline has the terminal (canonical mode off). The prompt shows a moment
        before that on a busy machine, and a Ctrl-C typed then may be lost in the switch:
        a person would press it again, a test waits instead."""
        import termios

        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.master)[3] & termios.ICANON and time.monotonic() < deadline:
            time.sleep(0.02)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += data.decode(errors="replace")
        return bool(data)

    def expect(self, text: str, timeout: float = 30.0, after: int = 0) -> int:
        """Wait until `text` shows (after position `after`); where it ends."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[after:]:
            if time.monotonic() > deadline or (not self._read(0.2) and self.proc.poll() is not None
                                               and text not in self.seen[after:]):
                if self.proc.poll() is not None:
                    self._read(0.2)
                    if text in self.seen[after:]:
                        break
                raise AssertionError(f"never showed {text!r}; the terminal shows:\n{self.seen}")
        return self.seen.index(text, after) + len(text)

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.1):
            pass
        if self.proc.poll() is None:
            raise AssertionError(f"still running after {timeout}s; the terminal shows:\n{self.seen!r}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal():
    opened = []

    def start(root, *args, **kwargs):
        t = Terminal(root, *args, **kwargs)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def sessions(project) -> list:
    return json.loads(project.run("chat", "--list", "--json", check=0).stdout)


def chat(project, *args, input: str = "", env: dict | None = None, check: int | None = None):
    """`amelia chat ARGS` with `input` on a plain (non-TTY) stdin."""
    proc = subprocess.run([sys.executable, "-m", "amelia", "chat", *args], cwd=project.root,
                          env=dict(os.environ, **(env or {})), input=input, capture_output=True,
                          text=True, timeout=120)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


# -- through a terminal --------------------------------------------------------------------

def test_two_turns_streamed_with_their_cost_then_exit(chat_project, oai, terminal):
    oai.enqueue(Reply(ANSWER, chunk_delay=0.02),
                Reply("Berlin is the capital of Germany.", usage={"input_tokens": 40, "output_tokens": 7}))
    t = terminal(chat_project.root, env={"NO_COLOR": ""})  # empty: colour allowed (no-color.org)
    at = t.expect("> ")
    assert "model default (openai fake-model)" in t.seen and "/exit" in t.seen
    t.type("What is the capital of France?\n")
    at = t.expect(ANSWER, after=at)
    at = t.expect("out tokens · cost unknown", after=at)
    assert "\x1b[2m" in t.seen  # the usage line is dim on a terminal
    t.type("And Germany?\n")
    at = t.expect("Berlin is the capital of Germany.", after=at)
    t.expect("40 in / 7 out tokens", after=at)
    t.type("/exit\n")
    assert t.wait() == 0
    assert "Traceback" not in t.seen
    # the second request carried the first turn as history
    messages = oai.calls()[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "What is the capital of France?"
    assert messages[2]["content"] == ANSWER and messages[3]["content"] == "And Germany?"
    [s] = sessions(chat_project)
    assert s["turns"] == 2 and s["title"] == "What is the capital of France?"
    assert s["input_tokens"] >= 40 and s["model"] == "default"
    assert s["id"] in t.seen  # the banner named the session
    listed = chat_project.run("chat", "--list", check=0).stdout
    assert s["id"] in listed and "What is the capital of France?" in listed


def test_ctrl_c_at_the_prompt_exits_130_without_a_traceback(chat_project, terminal):
    t = terminal(chat_project.root)
    t.expect("> ")
    t.wait_for_line_editing()
    t.type("\x03")
    assert t.wait() == 130
    assert "Traceback" not in t.seen and "KeyboardInterrupt" not in t.seen


def test_ctrl_c_during_an_answer_exits_130_and_keeps_no_half_turn(chat_project, oai, terminal):
    oai.enqueue(Reply("one two three four five six seven eight", chunk_delay=0.5))
    t = terminal(chat_project.root)
    at = t.expect("> ")
    t.type("Count slowly.\n")
    t.expect("one ", after=at)
    t.type("\x03")
    assert t.wait() == 130
    assert "Traceback" not in t.seen
    assert sessions(chat_project) == []


def test_ctrl_d_exits_0(chat_project, terminal):
    t = terminal(chat_project.root)
    t.expect("> ")
    t.type("\x04")
    assert t.wait() == 0
    assert "Traceback" not in t.seen


# -- through pipes -------------------------------------------------------------------------

def test_a_session_is_resumed_by_a_prefix_and_its_turns_are_sent_again(chat_project, oai):
    r = chat(chat_project, input="First question?\n", check=0)
    assert r.stdout.startswith(ANSWER + "\n")  # no banner, no prompt: just the answer
    [s] = sessions(chat_project)
    oai.reply = "A later answer."
    r = chat(chat_project, "--session", s["id"][:3], input="Second question?\n", check=0)
    assert "A later answer." in r.stdout
    messages = oai.calls()[-1].body["messages"]
    assert [m["content"] for m in messages[1:]] == ["First question?", ANSWER, "Second question?"]
    [again] = sessions(chat_project)
    assert again["id"] == s["id"] and again["turns"] == 2
    # a new chat is a new session, with nothing of the other one
    chat(chat_project, input="Unrelated?\n", check=0)
    assert len(oai.calls()[-1].body["messages"]) == 2
    assert [x["title"] for x in sessions(chat_project)] == ["Unrelated?", "First question?"]


def test_unknown_and_ambiguous_sessions_are_usage_errors(chat_project):
    r = chat(chat_project, "--session", "zzzz", input="", check=2)
    assert "no chat session 'zzzz'" in r.stderr and "amelia chat --list" in r.stderr
    from amelia.store import Store
    from amelia.store.chats import ChatMessage

    store = Store(str(chat_project.root))
    try:
        for sid in ("abcde2", "abcde3"):
            store.state.chats.save_turn(sid, "default", "", [ChatMessage("user", "q")])
    finally:
        store.close()
    r = chat(chat_project, "--session", "abcde", input="", check=2)
    assert "'abcde' is ambiguous (2 sessions: abcde2, abcde3)" in r.stderr
    chat(chat_project, "--session", "abcde3", input="", check=0)  # a whole id is its own prefix


def test_model_switches_with_slash_model(chat_project, oai):
    r = chat(chat_project, input="One?\n/model mini\nTwo?\n/model minii\n/modle\nThree?\n", check=0)
    bodies = [c.body for c in oai.calls()]
    assert [b["model"] for b in bodies] == ["fake-model", "gpt-4o-mini", "gpt-4o-mini"]
    assert "model mini (openai gpt-4o-mini)" in r.stdout
    assert "no model named 'minii'" in r.stderr and "did you mean 'mini'?" in r.stderr
    assert "unknown command /modle" in r.stderr and "did you mean '/model'?" in r.stderr
    assert "$0.0000" in r.stdout or "<$0.0001" in r.stdout  # gpt-4o-mini has a price
    [s] = sessions(chat_project)
    assert s["model"] == "mini" and s["turns"] == 3
    # resumed, the session goes on with the model it last used
    chat(chat_project, "--session", s["id"], input="Four?\n", check=0)
    assert oai.calls()[-1].body["model"] == "gpt-4o-mini"


def test_model_flag_and_unknown_model_or_source(chat_project, oai):
    chat(chat_project, "--model", "mini", input="Hi\n", check=0)
    assert oai.calls()[-1].body["model"] == "gpt-4o-mini"
    r = chat(chat_project, "--model", "defualt", input="Hi\n", check=2)
    assert "no model named 'defualt'" in r.stderr and "did you mean 'default'?" in r.stderr
    r = chat(chat_project, "--source", "docs", input="Hi\n", check=2)
    assert "no source named 'docs'" in r.stderr and "declares no sources" in r.stderr
    assert len(oai.calls()) == 1 and "Traceback" not in r.stderr


def test_claude_code_cannot_chat(project, oai):
    project.pipeline(pipeline(oai.base_url).replace("models:\n", "models:\n  coder: {provider: claude-code}\n"))
    r = chat(project, "--model", "coder", input="Hi\n", check=2)
    assert "cannot chat" in r.stderr and "worktree" in r.stderr
    r = chat(project, input="/model coder\nHi\n", check=0)
    assert "cannot chat" in r.stderr and oai.calls()[-1].body["model"] == "fake-model"


def test_a_missing_key_is_said_before_the_first_prompt(project, oai):
    project.pipeline(pipeline(oai.base_url).replace("retries: 0}", "retries: 0, api_key_env: CHAT_TEST_KEY}"))
    r = chat(project, input="Hi\n", env={"CHAT_TEST_KEY": ""}, check=4)
    assert "CHAT_TEST_KEY is not set" in r.stderr and ".env" in r.stderr
    assert oai.calls() == []
    r = chat(project, input="Hi\n", env={"CHAT_TEST_KEY": "sk-test-abcdef123456"}, check=0)
    assert ANSWER in r.stdout


def test_model_output_cannot_drive_the_terminal(chat_project, oai):
    oai.reply = "evil \x1b]0;pwned\x07 title \x1b[31mred"
    r = chat(chat_project, input="Hi\n", check=0)
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b]0;pwned\\x07" in r.stdout


def test_a_failed_answer_is_reported_and_the_chat_goes_on(chat_project, oai):
    oai.enqueue(Reply(status=500), Reply("Recovered."))
    r = chat(chat_project, input="One?\nTwo?\n", check=0)
    assert "did not answer" in r.stderr and "Recovered." in r.stdout
    [s] = sessions(chat_project)
    assert s["turns"] == 1 and s["title"] == "Two?"


def test_sources_command_without_sources(chat_project):
    r = chat(chat_project, input="/sources\n/help\n/exit\nnot sent\n", check=0)
    assert "no sources" in r.stdout and "/model" in r.stdout


def test_without_a_pipeline_file_the_default_model_is_the_local_one(tmp_path):
    # No amelia.yaml: the built-in `default` (local) is the model; a name not there is exit 2.
    r = subprocess.run([sys.executable, "-m", "amelia", "chat", "--model", "gpt"], cwd=tmp_path,
                       input="", capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "models are: default" in r.stderr


def test_list_json_needs_list(chat_project):
    r = chat(chat_project, "--json", input="", check=2)
    assert "--json goes with --list" in r.stderr


def test_list_before_any_chat(chat_project):
    assert chat_project.run("chat", "--list", check=0).stdout.startswith("no chat sessions yet")
    assert not chat_project.exists(".amelia")  # listing creates no store


# -- grounded in a source ------------------------------------------------------------------

DOCS = {
    "docs/install.md": "# Install\n\n## Linux\n\nInstall the zebra package with apt; it holds the "
                       "binaries and the manual pages.\n",
    "docs/cooking.md": "# Cooking\n\nBoil the pasta for nine minutes in salted water, then drain it.\n",
}


def cite_install(body) -> str:
    """The fake model's answer: cite whichever excerpt is the install page."""
    prompt = body["messages"][-1]["content"]
    for line in prompt.splitlines():
        if line.startswith("[") and "docs/install.md" in line:
            return f"Use apt to install zebra {line.split()[0]}."
    return "I do not know."


def test_a_grounded_chat_cites_its_excerpts(project, oai):
    pytest.importorskip("amelia.rag.convert")  # helper A's converter (issue 12)
    project.pipeline(pipeline(oai.base_url, 'sources:\n  docs: {paths: ["docs/*.md"]}\n'))
    for rel, text in DOCS.items():
        project.write(rel, text)
    offline = {"HF_HUB_OFFLINE": "1"}
    r = chat(project, "--source", "docs", input="Hi\n", env=offline, check=4)
    assert "source 'docs' is not indexed yet" in r.stderr and "amelia index --source docs" in r.stderr
    assert oai.calls() == []
    project.run("index", "--source", "docs", env=offline, check=0)
    oai.reply = cite_install
    r = chat(project, "--source", "docs", input="How do I install zebra on Linux?\n/sources\n",
             env=offline, check=0)
    body = oai.calls()[-1].body
    assert "cite each excerpt you use as [n]" in body["messages"][0]["content"]
    prompt = body["messages"][-1]["content"]
    assert "docs/install.md › Install › Linux\n" in prompt and "Install the zebra package" in prompt
    assert "docs/cooking.md › Cooking\n" in prompt  # top 5 of a two-document source: both
    assert prompt.endswith("Question: How do I install zebra on Linux?")
    n = cite_install(body).split("[")[1].split("]")[0]
    assert f"Use apt to install zebra [{n}]." in r.stdout
    assert f"[{n}] docs/install.md › Install › Linux\n" in r.stdout
    assert "* docs  docs/*.md  indexed" in r.stdout
    [s] = sessions(project)
    assert s["source"] == "docs"
    # resumed, the session stays grounded; only the user's words went into its history
    chat(project, "--session", s["id"], input="And on Mac?\n", env=offline, check=0)
    messages = oai.calls()[-1].body["messages"]
    assert messages[1]["content"] == "How do I install zebra on Linux?"
    assert "Excerpts from the project's documents" in messages[-1]["content"]


# -- the parts -----------------------------------------------------------------------------

Hit = namedtuple("Hit", "name headings text")


def test_grounded_prompt_numbers_the_excerpts_with_their_paths():
    from amelia.chat import grounding

    hits = [Hit("docs/install.md", ("Install", "Linux"), "Use apt.\n"), Hit("notes.txt", (), "Other.")]
    p = grounding.prompt("How to install?", hits)
    assert p == ("Excerpts from the project's documents:\n\n"
                 "[1] docs/install.md › Install › Linux\nUse apt.\n\n"
                 "[2] notes.txt\nOther.\n\nQuestion: How to install?")
    assert "No excerpt" in grounding.prompt("q", [])


def test_citations_are_the_excerpts_the_answer_cites():
    from amelia.chat import grounding

    hits = [Hit("a.md", ("A",), ""), Hit("b.md", (), ""), Hit("c.md", ("C", "D"), "")]
    assert grounding.cited("Yes [3], and [1, 2]; not [9] or [x].", 3) == [3, 1, 2]
    assert grounding.cited("[2][2] [3]", 3) == [2, 3]
    assert grounding.citation_lines("It is so [3].", hits) == ["[3] c.md › C › D"]
    assert grounding.citation_lines("No idea.", hits)[0] == "no citation; retrieved:"
    assert grounding.citation_lines("x", []) == ["no excerpt of the source matched"]


def test_history_keeps_the_newest_whole_turns_within_the_budget():
    from amelia.chat.history import trim
    from amelia.store.chats import ChatMessage

    msgs = []
    for i in range(5):
        msgs += [ChatMessage("user", f"q{i}" + "x" * 98), ChatMessage("assistant", f"a{i}" + "y" * 98)]
    history, left_out = trim(msgs, 450)
    assert left_out == 3
    assert [m["content"][:2] for m in history] == ["q3", "a3", "q4", "a4"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert trim(msgs, 10_000) == (trim(msgs, 10_000)[0], 0) and len(trim(msgs, 10_000)[0]) == 10
    assert trim(msgs + [ChatMessage("user", "dangling")], 10_000)[0][-1]["content"][:2] == "a4"


def test_streamed_text_is_escaped_and_a_split_crlf_stays_a_line_break():
    from amelia.chat.loop import StreamPrinter

    out = io.StringIO()
    p = StreamPrinter(out)
    for chunk in ("line one\r", "\nline \x1b[2", "J two"):
        p.write(chunk)
    p.finish("line one\r\nline \x1b[2J two", lambda text: out.write(f"<{text}>\n"))
    assert out.getvalue() == "line one\nline \\x1b[2J two\n"


def test_an_answer_streamed_twice_is_shown_again_whole():
    from amelia.chat.loop import StreamPrinter

    out = io.StringIO()
    p = StreamPrinter(out)
    for chunk in ("Hel", "Hello world"):  # a retry after a cut stream starts over
        p.write(chunk)
    p.finish("Hello world", lambda text: out.write(f"<{text}>\n"))
    assert out.getvalue().endswith("\n<(the stream was cut and the question asked again; "
                                   "the answer in full:)>\nHello world\n")


def test_cost_text():
    from amelia.chat.loop import cost_text

    assert cost_text(0.0, "local") == "free"
    assert cost_text(None, "openai") == "cost unknown"
    assert cost_text(0.01234, "anthropic") == "$0.0123"
    assert cost_text(0.00001, "openai") == "<$0.0001"


def test_session_list_golden(monkeypatch):
    from amelia.chat.listing import sessions_text

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        rows = [
            {"id": "k3m9xq", "created": 1700000000.0, "updated": 1700003600.0, "model": "default",
             "source": "docs", "title": "How do I install the zebra package on Linux machines at work?",
             "turns": 3, "input_tokens": 1200, "output_tokens": 340, "cost": 0.0123},
            {"id": "ab2cd3", "created": 1699990000.0, "updated": 1699990000.0, "model": "local-small",
             "source": "", "title": "evil \x1b]0;title\x07", "turns": 1, "input_tokens": 12,
             "output_tokens": 30, "cost": None},
        ]
        assert_golden(sessions_text(rows), GOLDEN / "list.txt")
        assert sessions_text([]) == "no chat sessions yet (start one with `amelia chat`)\n"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
