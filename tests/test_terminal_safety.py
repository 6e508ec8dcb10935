"""Text from outside end to end: `amelia run` on a pseudo-terminal (the live view) and on a
pipe (plain lines), against steps that print escape sequences and a fake OpenAI server
whose errors carry rich markup and the key. Nothing from outside is executed by the
terminal, nothing crashes, and no part of a key is shown or stored (DESIGN §11)."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest
from fakes import FakeOpenAI, Reply

from amelia.safetext import FRAGMENT

# 164 characters: the key, of which a cut at 300 once left 96 readable.
KEY = "sk-proj-" + "Hq3Vb7Nc1Xm5Zs9D" * 9 + "Tw2Ey4Ru6Io8Pa0S" + "Fg"
HOSTILE = r"\033]0;pwned\007\033[2J[/bold]"  # printf: a title change, clear screen, markup


def on_terminal(project, *args, env=None, timeout=60):
    """`amelia ARGS` with a pseudo-terminal (1000 columns: no line wraps) as stdin, stdout
    and stderr, in colour (the live view; NO_COLOR=1 in env gives plain lines): (exit
    code, every byte it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update(TERM="xterm-256color", COLUMNS="1000", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "amelia", *args], cwd=project.root,
                            env=full_env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        return proc.wait(timeout=10), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def stored(project) -> bytes:
    """Everything under .amelia: state.db, the logs, the objects."""
    data = b""
    for folder, _, files in os.walk(project.root / ".amelia"):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                data += f.read()
    return data


def key_pieces(key: str) -> set:
    """Every FRAGMENT-long run of the key's characters (of each line, for a split key)."""
    return {part[i:i + FRAGMENT].encode() for part in key.split()
            for i in range(len(part) - FRAGMENT + 1)}


def assert_no_key(data: bytes, key: str = KEY) -> None:
    shown = [p for p in key_pieces(key) if p in data]
    assert not shown, f"{len(shown)} pieces of the key leaked, e.g. {shown[:3]}"


def assert_only_rich_escapes(out: bytes) -> None:
    for raw in (b"\x1b]0;pwned", b"\x1b[2J", b"\x07"):
        assert raw not in out
    assert b"Traceback" not in out and b"MarkupError" not in out


def live_view(out: bytes) -> bool:
    return b"\x1b[?25l" in out  # rich hides the cursor while the live rows spin


@pytest.mark.parametrize("colour", [True, False], ids=["live", "plain"])
def test_a_step_printing_escape_sequences_is_shown_escaped_on_a_terminal(project, colour):
    project.pipeline(f"""\
        amelia: 1
        steps:
          noisy:
            run: printf '{HOSTILE}'; exit 1
            output: out.txt
        """)
    code, out = on_terminal(project, "run", env=None if colour else {"NO_COLOR": "1"})
    assert code == 1, out
    assert live_view(out) == colour
    assert_only_rich_escapes(out)
    assert b"\\x1b]0;pwned\\x07\\x1b[2J[/bold]" in out
    assert b"FAILED" in out and b"1 failed" in out
    [run_dir] = (project.root / ".amelia" / "logs").iterdir()
    for log in ("run.log", "noisy.log"):  # a user may `cat` them
        text = (run_dir / log).read_bytes()
        assert b"\x1b" not in text and b"\x07" not in text
        assert b"\\x1b]0;pwned\\x07\\x1b[2J[/bold]" in text
    assert "failed" in project.run("runs", check=0).stdout.splitlines()[1]  # not left running


def _agent_pipeline(base_url: str) -> str:
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model, retries: 0,
                     api_key_env: OPENAI_API_KEY}}
        agents:
          writer: {{system: You write short answers.}}
        steps:
          draft:
            agent: writer
            prompt: Say hello.
            output: draft.md
          count:
            agent: writer
            prompt: How many?
            schema: {{type: object, properties: {{n: {{type: integer}}}}, required: [n]}}
            output: count.json
        """)


def test_server_errors_and_answers_with_markup_and_the_key_neither_crash_nor_leak(project):
    # The key sits where a cut at 300 characters used to halve it.
    error = "[/bold] \x1b]0;pwned\x07 " + "x" * 180 + f" invalid key {KEY} [red]see docs[/]"
    answer = '{"n": "[/bold]\\u001b]0;pwned\\u0007"}'  # valid JSON, wrong type, with markup
    with FakeOpenAI() as srv:
        srv.reply = lambda body: (Reply(status=500, error_message=error)
                                  if "hello" in body["messages"][-1]["content"]
                                  else Reply(text=answer))
        project.pipeline(_agent_pipeline(srv.base_url))
        code, out = on_terminal(project, "run", "-j", "1", env={"OPENAI_API_KEY": KEY})
    assert code == 1, out
    assert live_view(out)
    assert_only_rich_escapes(out)
    assert_no_key(out)
    assert_no_key(stored(project))
    assert b"2 failed" in out
    assert b"(500): [/bold] \\x1b]0;pwned\\x07 xxx" in out  # the server's error, as text
    assert b"invalid key [redacted] [red]see docs[/]" in out
    assert b"at n: '[/bold]\\x1b]0;pwned\\x07' is not of type" in out  # the model's answer
    shown = project.run("show", check=0)
    assert "failed" in shown.stdout and "[redacted]" in shown.stdout
    assert "\x1b" not in shown.stdout and KEY[:FRAGMENT] not in shown.stdout


def test_a_key_with_a_line_break_is_never_printed(project):
    key = "sk-" + "Ln4Bk8Wq2Zx6Cv0M" * 4 + "\n" + "Rt5Yu7Io9Pa1Sd3F" * 4
    quoted = key.replace("\n", "\\n")  # .env's double quotes: \n is a line break
    (project.root / ".env").write_text(f'OPENAI_API_KEY="{quoted}"\n')
    with FakeOpenAI("an answer") as srv:
        project.pipeline(_agent_pipeline(srv.base_url))
        r = project.run("run")
        assert not srv.calls()  # refused before anything was sent
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the API key in OPENAI_API_KEY has a line break" in r.stdout
    output = (r.stdout + r.stderr).encode()
    assert_no_key(output, key)
    assert_no_key(stored(project), key)
