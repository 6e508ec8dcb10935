"""provider: claude-code, against a fake `claude` executable written into tmp_path."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from amelia.providers import ModelConfig, ProviderError, Request, provider_class
from amelia.providers import claude_code
from amelia.providers.claude_code import ClaudeCodeCompletion, Provider

FAKE = r'''#!{python}
"""A fake Claude Code CLI. FAKE_CLAUDE_MODE picks its behaviour; it records its call."""
import json, os, subprocess, sys, time
args = sys.argv[1:]
prompt_from_stdin = len(args) > 1 and args[1] == "--output-format"
stdin = sys.stdin.read() if prompt_from_stdin else None
if sys.stdin is not None and not prompt_from_stdin:
    try:
        closed = sys.stdin.read() == ""  # /dev/null: reads as empty at once
    except Exception:
        closed = True
else:
    closed = False
with open(os.environ["FAKE_CLAUDE_LOG"], "w") as f:
    json.dump({{"args": args, "cwd": os.getcwd(), "stdin": stdin, "stdin_empty": closed,
               "key": os.environ.get("ANTHROPIC_API_KEY")}}, f)
mode = os.environ.get("FAKE_CLAUDE_MODE", "ok")
if mode == "sleep":
    child = subprocess.Popen(["sleep", "30"])
    with open(os.environ["FAKE_CLAUDE_LOG"] + ".child", "w") as f:
        f.write(str(child.pid))
    time.sleep(30)
elif mode == "fail":
    print("starting", file=sys.stderr)
    print("API Error: 529 overloaded_error", file=sys.stderr)
    sys.exit(1)
elif mode == "auth":
    print("Invalid API key · Please run /login", file=sys.stderr)
    sys.exit(1)
elif mode == "is_error":
    print(json.dumps({{"type": "result", "subtype": "error_max_turns", "is_error": True,
                      "result": "Reached max turns (1)"}}))
elif mode == "garbage":
    print("this is not json")
else:
    answer = os.environ.get("FAKE_CLAUDE_ANSWER", "Hello from fake claude")
    print(json.dumps({{"type": "result", "subtype": "success", "is_error": False,
                      "result": answer, "stop_reason": "end_turn", "session_id": "s-1",
                      "num_turns": 1, "total_cost_usd": 0.0123,
                      "modelUsage": {{"claude-sonnet-4-5-20250929": {{}}}},
                      "usage": {{"input_tokens": 12, "output_tokens": 34,
                                "cache_read_input_tokens": 5600,
                                "cache_creation_input_tokens": 70}}}}))
'''


@pytest.fixture
def fake(tmp_path):
    exe = tmp_path / "bin" / "claude"
    exe.parent.mkdir()
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "call.json"
    root = tmp_path / "proj"
    work = root / ".amelia" / "worktrees" / "docs"  # an Amelia worktree: a .git file
    work.mkdir(parents=True)
    (work / ".git").write_text("gitdir: elsewhere\n")

    def make(mode="ok", timeout=30.0, model="", **extra):
        env = {"CLAUDE_CODE_PATH": str(exe), "FAKE_CLAUDE_MODE": mode,
               "FAKE_CLAUDE_LOG": str(log), "PATH": os.environ.get("PATH", ""),
               "AMELIA_ROOT": str(root), **extra}
        cfg = ModelConfig(name="cc", provider="claude-code", model=model, timeout=timeout)
        return Provider(cfg, env)

    make.log = lambda: json.loads(log.read_text())
    make.log_path = log
    make.exe = exe
    make.work = work
    make.root = root
    return make


def test_registered_under_its_name():
    assert provider_class("claude-code") is Provider


def test_answer_usage_and_cost(fake):
    chunks = []
    c = fake(model="sonnet", ANTHROPIC_API_KEY="k-from-dotenv").complete(
        Request(system="Be brief.", prompt="Say hello", workdir=str(fake.work)),
        on_text=chunks.append)
    assert isinstance(c, ClaudeCodeCompletion)
    assert c.text == "Hello from fake claude" and chunks == [c.text]
    assert (c.usage.input_tokens, c.usage.output_tokens) == (12, 34)
    assert (c.usage.cached_tokens, c.usage.cache_write_tokens) == (5600, 70)
    assert c.cost_usd == 0.0123 and c.session_id == "s-1" and c.num_turns == 1
    assert c.model == "claude-sonnet-4-5-20250929" and c.stop_reason == "end_turn"
    call = fake.log()
    assert call["args"] == ["-p", "Say hello", "--output-format", "json", "--permission-mode", "acceptEdits",
                            "--append-system-prompt", "Be brief.", "--model", "sonnet"]
    assert call["cwd"] == str(fake.work)
    assert call["stdin_empty"] is True
    assert call["key"] == "k-from-dotenv"  # the provider's env (environment + .env) is passed


def test_no_system_no_model_and_root_as_workdir(fake):
    """Without a workdir the CLI runs in the project root, and never with acceptEdits there."""
    fake().complete(Request(system="", prompt="hi"))
    call = fake.log()
    assert call["args"] == ["-p", "hi", "--output-format", "json"]
    assert call["cwd"] == str(fake.root)


def test_accept_edits_only_in_an_amelia_worktree(fake, tmp_path):
    scratch = fake.root / ".amelia" / "worktrees" / ".scratch" / "edit-0123456789"
    (scratch / "src").mkdir(parents=True)
    (scratch / ".git").write_text("gitdir: elsewhere\n")
    fake().complete(Request(system="", prompt="hi", workdir=str(scratch / "src")))
    assert "acceptEdits" in fake.log()["args"] and fake.log()["cwd"] == str(scratch / "src")
    # a user's checkout (a .git folder), even one at such a path, and a plain folder: no
    checkout = tmp_path / "user" / ".amelia" / "worktrees" / "x"
    (checkout / ".git").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    for where in (checkout, tmp_path / "plain", fake.root, fake.root / ".amelia" / "worktrees"):
        fake().complete(Request(system="", prompt="hi", workdir=str(where)))
        assert "--permission-mode" not in fake.log()["args"], where
        assert fake.log()["cwd"] == str(where)
    assert claude_code.is_amelia_worktree(str(fake.work))
    assert not claude_code.is_amelia_worktree(None)


def test_history_and_shared_context_are_flattened_into_the_prompt(fake):
    fake().complete(Request(system="", prompt="Fix the JSON.", shared_context="CTX",
                            history=({"role": "user", "content": "Give JSON"},
                                     ("assistant", "{bad"))))
    prompt = fake.log()["args"][1]
    assert prompt.startswith("CTX\n\n")
    assert "[user]\nGive JSON" in prompt and "[assistant]\n{bad" in prompt
    assert prompt.endswith("Fix the JSON.")


def test_long_prompt_goes_through_stdin(fake):
    big = "x" * (claude_code.MAX_ARG_BYTES + 10)
    fake().complete(Request(system="", prompt=big))
    call = fake.log()
    assert call["args"] == ["-p", "--output-format", "json"]
    assert call["stdin"] == big


def test_json_schema_request_asks_for_json_and_strips_fences(fake):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    c = fake(FAKE_CLAUDE_ANSWER='```json\n{"n": 3}\n```').complete(
        Request(system="", prompt="Count.", json_schema=schema))
    assert json.loads(c.text) == {"n": 3}
    prompt = fake.log()["args"][1]
    assert prompt.startswith("Count.\n\nAnswer with JSON only")
    assert json.dumps(schema, indent=2, sort_keys=True) in prompt


def test_timeout_kills_the_process_group(fake):
    p = fake(mode="sleep", timeout=1.0)
    start = time.monotonic()
    with pytest.raises(ProviderError) as e:
        p.complete(Request(system="", prompt="hi"))
    assert time.monotonic() - start < 10
    assert e.value.message == "claude timed out after 1s" and e.value.retryable
    child = int((fake.log_path.parent / (fake.log_path.name + ".child")).read_text())
    for _ in range(50):  # the grandchild `sleep 30` died with the group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:  # a zombie waiting for init counts as dead
            if f.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.1)
    else:
        pytest.fail("the fake claude's child survived the timeout")


def test_nonzero_exit_reports_the_stderr_tail(fake):
    with pytest.raises(ProviderError) as e:
        fake(mode="fail").complete(Request(system="", prompt="hi"))
    assert e.value.message.startswith("claude exited with status 1: ")
    assert e.value.message.endswith("API Error: 529 overloaded_error")
    assert e.value.retryable
    with pytest.raises(ProviderError, match="Invalid API key") as e:
        fake(mode="auth").complete(Request(system="", prompt="hi"))
    assert not e.value.retryable


def test_is_error_result(fake):
    with pytest.raises(ProviderError, match="Reached max turns") as e:
        fake(mode="is_error").complete(Request(system="", prompt="hi"))
    assert not e.value.retryable


def test_unparsable_output(fake):
    with pytest.raises(ProviderError, match="no JSON result: this is not json") as e:
        fake(mode="garbage").complete(Request(system="", prompt="hi"))
    assert e.value.retryable


def test_missing_executable_names_the_variable(fake, tmp_path):
    p = fake(CLAUDE_CODE_PATH=str(tmp_path / "nope" / "claude"))
    with pytest.raises(ProviderError) as e:
        p.complete(Request(system="", prompt="hi"))
    assert "CLAUDE_CODE_PATH" in e.value.message and not e.value.retryable
    p = fake(PATH=str(tmp_path / "empty"))
    del p.env["CLAUDE_CODE_PATH"]
    with pytest.raises(ProviderError) as e:
        p.complete(Request(system="", prompt="hi"))
    assert "CLAUDE_CODE_PATH" in e.value.message and "not on PATH" in e.value.message
    assert not e.value.retryable


def test_claude_found_on_path(fake):
    p = fake(PATH=f"{fake.exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    del p.env["CLAUDE_CODE_PATH"]
    assert p.complete(Request(system="", prompt="hi")).text == "Hello from fake claude"


def test_parse_result_variants():
    assert claude_code.parse_result('warning: x\n{"type": "result", "result": "a"}\n') == \
        {"type": "result", "result": "a"}
    assert claude_code.parse_result('[{"type": "system"}, {"type": "result", "result": "b"}]') \
        == {"type": "result", "result": "b"}
    assert claude_code.parse_result("") is None
    assert claude_code.strip_fence('```\n[1]\n```') == "[1]"
    assert claude_code.strip_fence('{"a": 1}') == '{"a": 1}'


def test_request_workdir_wins(fake, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    fake().complete(Request(system="", prompt="hi", workdir=str(other)))
    assert fake.log()["cwd"] == str(other)
