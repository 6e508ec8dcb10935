"""Agent steps end to end: amelia as a subprocess against fake model servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply

KEY = "sk-test-SECRET-7f3a9c"


def openai_pipeline(base_url: str, steps: str, model_extra: str = ", retries: 0") -> str:
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model{model_extra}}}
        agents:
          writer: {{system: You write short answers.}}
        steps:
        """) + textwrap.indent(textwrap.dedent(steps), "  ")


TWO_STEPS = """\
first:
  agent: writer
  prompt: Say hello.
  output: build/first.md
second:
  agent: writer
  prompt: |
    Improve: ${{ steps.first.output }}
  output: build/second.md
"""


@pytest.fixture
def oai():
    with FakeOpenAI("an answer") as srv:
        yield srv


def test_answers_are_cached_and_a_rerun_sends_no_request(project, oai):
    project.pipeline(openai_pipeline(oai.base_url, TWO_STEPS))
    r = project.run("run", check=0)
    assert "2 ran, 0 cached" in r.stdout
    assert project.read("build/first.md") == "an answer\n"
    assert len(oai.requests) == 2
    assert "an answer" in oai.requests[1].body["messages"][-1]["content"]  # upstream output in prompt
    r = project.run("run", check=0)
    assert "0 ran, 2 cached" in r.stdout
    assert len(oai.requests) == 2


def test_prompt_change_reruns_only_that_step_and_dependents(project, oai):
    steps = TWO_STEPS + textwrap.dedent("""\
        other:
          agent: writer
          prompt: Something else.
          output: build/other.md
        """)
    project.pipeline(openai_pipeline(oai.base_url, steps))
    project.run("run", check=0)
    assert len(oai.requests) == 3
    oai.reply = "a different answer"
    project.pipeline(openai_pipeline(oai.base_url, steps.replace("Say hello.", "Say hi.")))
    plan = project.run("plan", check=0).stdout
    assert "run     first   prompt changed\n" in plan
    assert "blocked second  after first" in plan and "cached  other" in plan
    r = project.run("run", check=0)
    assert "2 ran, 1 cached" in r.stdout
    assert len(oai.requests) == 5


def test_usage_is_recorded_and_shown(project, oai):
    project.pipeline(openai_pipeline(oai.base_url, TWO_STEPS))
    project.run("run", check=0)
    shown = json.loads(project.run("show", "last", "--json", check=0).stdout)
    usage = {s["step"]: s["usage"] for s in shown["steps"]}
    assert usage["first"]["calls"] == 1
    assert usage["first"]["input_tokens"] > 0 and usage["first"]["output_tokens"] == 2
    assert usage["first"]["cost"] is None  # no price known for fake-model
    text = project.run("show", "last", check=0).stdout
    assert "tokens    " in text and "in 2 calls" in text
    events = [json.loads(line) for line in project.run("run", "--force-all", "--json", check=0)
              .stdout.splitlines()]
    calls = [e for e in events if e["type"] == "model_called"]
    assert len(calls) == 2 and calls[0]["provider"] == "openai" and calls[0]["retries"] == 0


def test_rate_limit_is_retried_after_the_servers_delay(project, oai):
    project.pipeline(openai_pipeline(oai.base_url, "a:\n  agent: writer\n  prompt: Hi.\n  output: a.md\n",
                                     ", retries: 2"))
    oai.enqueue(Reply(status=429, retry_after=1))
    r = project.run("run", check=0)
    assert "1 ran" in r.stdout and len(oai.requests) == 2
    gap = oai.requests[1].time - oai.requests[0].time
    assert gap >= 0.9, f"retried after {gap:.2f}s, not after Retry-After: 1"
    shown = json.loads(project.run("show", "last", "--json", check=0).stdout)
    assert shown["steps"][0]["usage"]["retries"] == 1


def test_circuit_breaker_stops_calling_a_failing_service(project, oai):
    steps = "".join(f"s{i}:\n  agent: writer\n  prompt: Question {i}.\n  output: out/{i}.md\n"
                    for i in range(7))
    project.pipeline(openai_pipeline(oai.base_url, steps))
    oai.reply = lambda body: Reply(status=500)
    r = project.run("run", "--jobs", "1")
    assert r.returncode == 1
    assert len(oai.requests) == 5, "the breaker should open after 5 failures in a row"
    assert r.stdout.count("circuit open") == 2
    assert "7 failed" in r.stdout


def test_structured_output_is_repaired(project, oai):
    schema = "{type: object, properties: {n: {type: integer}}, required: [n]}"
    steps = f"count:\n  agent: writer\n  prompt: Count.\n  schema: {schema}\n  output: build/n.json\n"
    project.pipeline(openai_pipeline(oai.base_url, steps))
    oai.enqueue(Reply(json_obj={"n": "three"}), Reply(json_obj={"n": 3}))
    project.run("run", check=0)
    assert json.loads(project.read("build/n.json")) == {"n": 3}
    assert len(oai.requests) == 2
    body = oai.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    repair = oai.requests[1].body["messages"][-1]["content"]
    assert "'three' is not of type 'integer'" in repair


def test_structured_output_fails_with_the_validators_message(project, oai):
    schema = "{type: object, properties: {n: {type: integer}}, required: [n]}"
    steps = f"count:\n  agent: writer\n  prompt: Count.\n  schema: {schema}\n  repairs: 1\n  output: n.json\n"
    project.pipeline(openai_pipeline(oai.base_url, steps))
    oai.reply = lambda body: Reply(json_obj={"n": "many"})
    r = project.run("run")
    assert r.returncode == 1
    assert ("the answer does not match the schema after 1 repair: at n: 'many' is not of type "
            "'integer'") in r.stdout
    assert not project.exists("n.json") and len(oai.requests) == 2


def test_a_broken_stream_is_never_cached(project, oai):
    project.pipeline(openai_pipeline(oai.base_url, "a:\n  agent: writer\n  prompt: Hi.\n  output: a.md\n"))
    oai.enqueue(Reply(text="a long answer that breaks", break_stream_after=2))
    r = project.run("run")
    assert r.returncode == 1 and not project.exists("a.md")
    r = project.run("run", check=0)
    assert "1 ran" in r.stdout and project.read("a.md") == "an answer\n"


def test_model_concurrency_limit(project, oai):
    oai.latency = 0.4
    steps = "".join(f"s{i}:\n  agent: writer\n  prompt: Q{i}.\n  output: out/{i}.md\n" for i in range(6))
    project.pipeline(openai_pipeline(oai.base_url, steps, ", retries: 0, concurrency: 2"))
    project.run("run", "--jobs", "6", check=0)
    assert oai.max_concurrent == 2


def test_missing_key_stops_before_any_step(project):
    project.pipeline("""\
        amelia: 1
        models:
          claude: {provider: anthropic, model: claude-sonnet-5-5}
        steps:
          prep:
            run: touch prepared
          ask:
            agent: {model: claude}
            prompt: Hi.
            output: a.md
        """)
    env = {"ANTHROPIC_API_KEY": ""}
    r = project.run("run", env=env)
    assert r.returncode == 4
    assert ("error: ANTHROPIC_API_KEY is not set: model 'claude' (anthropic) needs it for step ask"
            in r.stderr)
    assert "hint: export it, or put it in .env at the project root" in r.stderr
    assert not project.exists("prepared")


def test_anthropic_key_never_stored(project):
    with FakeAnthropic("claude says hi") as srv:
        project.pipeline(f"""\
            amelia: 1
            models:
              claude: {{provider: anthropic, base_url: "{srv.base_url}", model: claude-sonnet-5-5}}
            steps:
              ask:
                agent: {{model: claude, system: Be brief.}}
                prompt: Hi.
                output: a.md
            """)
        project.write(".env", f"ANTHROPIC_API_KEY={KEY}\n")
        r = project.run("run", "--json", env={"ANTHROPIC_API_KEY": ""})
        assert r.returncode == 0, r.stdout + r.stderr
        assert project.read("a.md") == "claude says hi\n"
        headers = srv.requests[0].headers
        assert KEY in headers.get("authorization", "") + headers.get("x-api-key", "")
    assert KEY not in r.stdout + r.stderr
    for path in (project.root / ".amelia").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the key leaked into {path}"


def test_claude_code_provider_runs_the_cli(project, tmp_path, monkeypatch):
    """A coding agent runs in a scratch worktree (the project is a git repository), never in
    the user's checkout; tests/test_sandbox.py checks what it changed."""
    import subprocess

    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-q",
                    "--allow-empty", "-m", "init"], cwd=project.root, check=True)
    seen = tmp_path / "cwd-seen"
    fake = tmp_path / "claude"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        prompt = sys.argv[sys.argv.index("-p") + 1]
        open({str(seen)!r}, "w").write(os.getcwd())
        print(json.dumps({{"type": "result", "is_error": False, "result": "edited: " + prompt,
                          "usage": {{"input_tokens": 5, "output_tokens": 2}}, "total_cost_usd": 0.01}}))
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    project.pipeline("""\
        amelia: 1
        models:
          coder: {provider: claude-code}
        steps:
          edit:
            agent: {model: coder}
            prompt: Fix the bug.
            output: build/edit.md
        """)
    r = project.run("run", env={"CLAUDE_CODE_PATH": str(fake)}, check=0)
    assert "1 ran" in r.stdout
    assert project.read("build/edit.md") == "edited: Fix the bug.\n"
    assert seen.read_text().startswith(str(project.root / ".amelia" / "worktrees" / ".scratch") + os.sep)
    assert not (project.root / ".amelia" / "worktrees" / ".scratch").exists() or \
        not any((project.root / ".amelia" / "worktrees" / ".scratch").iterdir())
    shown = json.loads(project.run("show", "last", "--json", check=0).stdout)
    assert shown["steps"][0]["usage"]["cost"] == pytest.approx(0.01)


def test_model_override_flag_switches_every_step(project, oai):
    project.pipeline(f"""\
        amelia: 1
        models:
          default: {{provider: local}}
          remote: {{provider: openai, base_url: "{oai.base_url}", model: fake-model}}
        steps:
          a:
            agent: {{system: x}}
            prompt: Hi.
            output: a.md
        """)
    r = project.run("run", "-m", "default=remote", check=0)
    assert "1 ran" in r.stdout and len(oai.requests) == 1
    bad = project.run("run", "-m", "default=nope")
    assert bad.returncode == 2 and "--model default=nope: no model named 'nope'" in bad.stderr


def test_doctor_reports_models(project, oai):
    project.pipeline(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{oai.base_url}", model: fake-model}}
          claude: {{provider: anthropic, model: claude-sonnet-5-5}}
        steps:
          a:
            agent: {{system: x}}
            prompt: Hi.
            output: a.md
        """)
    r = project.run("doctor", env={"ANTHROPIC_API_KEY": ""})
    assert r.returncode == 0, r.stdout
    assert "ok    model default" in r.stdout and "answers" in r.stdout
    assert "warn  model claude" in r.stdout and "ANTHROPIC_API_KEY is not set" in r.stdout


def test_flagship_pipeline_runs_offline_on_the_local_model(project):
    """pipelines/sdlc.yaml end to end on the bundled model, with no network and no key."""
    from conftest import REPO

    for rel in ("pipelines/sdlc.yaml", "pipelines/prompts/discovery.md", "pipelines/prompts/design.md",
                "pipelines/prompts/planning.md", "pipelines/schemas/plan.schema.json",
                "pipelines/scripts/tasks.py"):
        project.write(rel, (REPO / rel).read_text())
    (project.root / ".git").mkdir()  # the project root, as in a clone of this repository
    env = {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    r = project.run("run", "pipelines/sdlc.yaml", env=env, timeout=600, check=0)
    assert "4 ran, 0 cached" in r.stdout
    plan = json.loads(project.read("build/sdlc/plan.json"))
    import jsonschema

    jsonschema.validate(plan, json.loads((REPO / "pipelines/schemas/plan.schema.json").read_text()))
    assert project.read("build/sdlc/tasks.md").startswith("# ")
    r = project.run("run", "pipelines/sdlc.yaml", env=env, check=0)
    assert "0 ran, 4 cached" in r.stdout
