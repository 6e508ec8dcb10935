"""The fake provider servers themselves: wire formats, scripting, concurrency, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest

from fakes import FakeAnthropic, FakeOpenAI, Reply, example_from_schema
from conftest import in_parallel

FAKES = Path(__file__).resolve().parent.parent / "fakes"
ANTHROPIC_HEADERS = {"anthropic-version": "2026-10-21", "x-api-key": "k"}


def post(url: str, body: dict, headers: dict | None = None, timeout: float = 5):
    """(status, parsed JSON or raw text) of a POST, errors included."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read().decode(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read().decode(), e.headers["Content-Type"]
    return status, (json.loads(raw) if ctype.startswith("application/json") else raw)


def get(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=5) as resp:
        return json.loads(resp.read())


def chat(text="hi", **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def message(text="hi", **extra) -> dict:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": text}],
            **extra}


# -- concurrency ------------------------------------------------------------------------

@pytest.mark.parametrize("fake, path, body, headers", [
    (FakeOpenAI, "/chat/completions", chat(), {}),
    (FakeAnthropic, "/v1/messages", message(stream=True), ANTHROPIC_HEADERS),
])
def test_concurrent_requests_overlap(fake, path, body, headers):
    with fake("ok", latency=0.5) as srv:
        statuses = []

        def call():
            statuses.append(post(srv.base_url + path, body, headers)[0])

        elapsed = in_parallel(call, 8)
    assert statuses == [200] * 8
    assert elapsed < 1.5, elapsed
    assert srv.max_concurrent == 8


def test_concurrent_sdk_streams_overlap():
    with FakeOpenAI("a b c", latency=0.5) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        texts = []

        def call():
            stream = client.chat.completions.create(model="m", stream=True,
                                                    messages=[{"role": "user", "content": "q"}])
            texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

        assert in_parallel(call, 8) < 1.5
        client.close()
    assert texts == ["a b c"] * 8


def test_stop_does_not_wait_for_hanging_requests():
    srv = FakeOpenAI().start()
    srv.enqueue(Reply(hang=30))
    t = threading.Thread(target=lambda: post(srv.base_url + "/chat/completions", chat(),
                                             timeout=10), daemon=True)
    t.start()
    while not srv.requests:
        time.sleep(0.01)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 2


# -- OpenAI wire format -------------------------------------------------------------------

def test_openai_non_streaming_with_the_sdk():
    with FakeOpenAI("one two three") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        got = client.chat.completions.create(model="gpt-x", messages=[
            {"role": "system", "content": "be good"}, {"role": "user", "content": "hi there"}])
        client.close()
    assert got.choices[0].message.content == "one two three"
    assert got.choices[0].finish_reason == "stop"
    assert got.model == "gpt-x"
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (4, 3)


def test_openai_stream_events():
    with FakeOpenAI("one two") as srv:
        status, raw = post(srv.base_url + "/chat/completions",
                           chat(stream=True, stream_options={"include_usage": True}))
    assert status == 200
    events = [e[len("data: "):] for e in raw.strip().split("\n\n")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                   if c["choices"]) == "one two"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_openai_stream_without_include_usage_has_no_usage_chunk():
    with FakeOpenAI("one two") as srv:
        _, raw = post(srv.base_url + "/chat/completions", chat(stream=True))
    chunks = [json.loads(e[6:]) for e in raw.strip().split("\n\n")[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_openai_models_endpoint():
    with FakeOpenAI(model="gpt-fake-1") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["gpt-fake-1"]
        client.close()


def test_openai_error_bodies_and_retry_after():
    with FakeOpenAI() as srv:
        srv.enqueue(Reply(status=429, retry_after=3), Reply(status=500))
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(**chat())
        assert info.value.response.headers["retry-after"] == "3"
        assert info.value.body["code"] == "rate_limit_exceeded"
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**chat())
        client.close()


def test_openai_validates_requests():
    with FakeOpenAI() as srv:
        status, body = post(srv.base_url + "/chat/completions",
                            chat(stream_options={"include_usage": True}))
        assert status == 400 and "stream_options" in body["error"]["message"]
        status, body = post(srv.base_url + "/chat/completions", {"model": "m", "messages": []})
        assert status == 400
        status, body = post(srv.base_url + "/nope", chat())
        assert status == 404
        assert srv.pending == 0


def test_openai_requires_its_key_when_given_one():
    with FakeOpenAI(api_key="sk-right-key-123456") as srv:
        status, body = post(srv.base_url + "/chat/completions", chat(),
                            {"Authorization": "Bearer sk-wrong-key-98765"})
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert "sk-wrong-key-98765" not in body["error"]["message"]  # masked, as OpenAI does
        status, _ = post(srv.base_url + "/chat/completions", chat(),
                         {"Authorization": "Bearer sk-right-key-123456"})
        assert status == 200


# -- Anthropic wire format ----------------------------------------------------------------

def test_anthropic_non_streaming_with_the_sdk():
    with FakeAnthropic("one two three") as srv:
        client = anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        got = client.messages.create(model="claude-x", max_tokens=50,
                                     messages=[{"role": "user", "content": "hi there"}])
        tool = client.messages.create(
            model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "answer", "input_schema": {
                "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}],
            tool_choice={"type": "tool", "name": "answer"})
        client.close()
    assert got.content[0].text == "one two three" and got.stop_reason == "end_turn"
    assert (got.usage.input_tokens, got.usage.output_tokens) == (2, 3)
    assert tool.content[0].type == "tool_use" and tool.content[0].name == "answer"
    assert tool.stop_reason == "tool_use"


def test_anthropic_stream_events_for_text_and_tool_use():
    with FakeAnthropic("one two") as srv:
        _, raw = post(srv.base_url + "/v1/messages", message(stream=True), ANTHROPIC_HEADERS)
        srv.enqueue(Reply(json_obj={"n": 5}))
        _, raw_tool = post(srv.base_url + "/v1/messages", message(
            stream=True, tools=[{"name": "answer", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "answer"}), ANTHROPIC_HEADERS)

    def parse(raw):
        out = []
        for block in raw.strip().split("\n\n"):
            event, data = block.split("\n")
            out.append((event[len("event: "):], json.loads(data[len("data: "):])))
        return out

    events = parse(raw)
    assert [e for e, _ in events] == ["message_start", "content_block_start", "ping",
                                      "content_block_delta", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"]
    usage = events[0][1]["message"]["usage"]
    assert {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"} <= set(usage)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 2

    tool_events = parse(raw_tool)
    start = next(d for e, d in tool_events if e == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    partial = "".join(d["delta"]["partial_json"] for e, d in tool_events
                      if e == "content_block_delta")
    assert json.loads(partial) == {"n": 5}
    assert tool_events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_models_endpoint():
    with FakeAnthropic(model="claude-fake-1") as srv:
        assert get(srv.base_url + "/v1/models", ANTHROPIC_HEADERS)["data"][0]["id"] == \
            "claude-fake-1"


def test_anthropic_error_bodies():
    with FakeAnthropic() as srv:
        srv.enqueue(Reply(status=529), Reply(status=429, retry_after=4))
        status, body = post(srv.base_url + "/v1/messages", message(), ANTHROPIC_HEADERS)
        assert status == 529 and body["error"]["type"] == "overloaded_error"
        assert body["type"] == "error"
        client = anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as info:
            client.messages.create(**message())
        assert info.value.response.headers["retry-after"] == "4"
        client.close()


def test_anthropic_validates_requests():
    with FakeAnthropic() as srv:
        url = srv.base_url + "/v1/messages"
        status, body = post(url, {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                            ANTHROPIC_HEADERS)
        assert status == 400 and "max_tokens" in body["error"]["message"]
        status, body = post(url, message(temperature=0.5), ANTHROPIC_HEADERS)
        assert status == 400 and "temperature" in body["error"]["message"]
        status, _ = post(url, message(temperature=0.5),
                         {**ANTHROPIC_HEADERS, "anthropic-version": "2023-06-01"})
        assert status == 200
        status, body = post(url, message(), {"x-api-key": "k"})
        assert status == 400 and "anthropic-version" in body["error"]["message"]
        blocks = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}] * 5
        status, body = post(url, message() | {"messages": [{"role": "user", "content": blocks}]},
                            ANTHROPIC_HEADERS)
        assert status == 400 and "maximum of 4" in body["error"]["message"]
        status, body = post(url, message(tools=[{"name": "a", "input_schema": {
            "type": "object"}}], tool_choice={"type": "tool", "name": "b"}), ANTHROPIC_HEADERS)
        assert status == 400


def test_anthropic_simulates_prompt_caching():
    with FakeAnthropic("ok") as srv:
        shared = {"type": "text", "text": "a b c d e f", "cache_control": {"type": "ephemeral"}}

        def usage(question):
            body = message() | {"messages": [{"role": "user", "content": [
                shared, {"type": "text", "text": question}]}]}
            return post(srv.base_url + "/v1/messages", body, ANTHROPIC_HEADERS)[1]["usage"]

        first, second = usage("q one"), usage("q two three")
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (6, 0)
    assert first["input_tokens"] == 2
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, 6)
    assert second["input_tokens"] == 3


# -- scripting ------------------------------------------------------------------------------

def test_queue_is_consumed_in_order_then_the_default():
    with FakeOpenAI("default") as srv:
        srv.enqueue(Reply(text="first"), "second")
        answers = [post(srv.base_url + "/chat/completions", chat())[1]
                   ["choices"][0]["message"]["content"] for _ in range(3)]
    assert answers == ["first", "second", "default"]


def test_callable_default_and_recorded_requests():
    seen = []

    def reply(body):
        seen.append(body)
        return {"echo": body["messages"][-1]["content"]}

    with FakeOpenAI(reply) as srv:
        _, body = post(srv.base_url + "/chat/completions", chat("ping"), {"X-Test": "yes"})
        assert json.loads(body["choices"][0]["message"]["content"]) == {"echo": "ping"}
        assert srv.last.body == chat("ping") and srv.last.headers["x-test"] == "yes"
        assert srv.last.method == "POST" and srv.last.path == "/v1/chat/completions"
        assert len(srv.calls()) == 1 and srv.bodies == [chat("ping")]
    assert seen == [chat("ping")]


def test_reply_latency_overrides_the_servers():
    with FakeOpenAI("x", latency=5) as srv:
        srv.enqueue(Reply(latency=0))
        start = time.monotonic()
        post(srv.base_url + "/chat/completions", chat())
        assert time.monotonic() - start < 1


def test_example_from_schema():
    schema = {"type": "object", "required": ["a", "b", "c", "d"], "properties": {
        "a": {"type": "string", "minLength": 6}, "b": {"enum": ["x", "y"]},
        "c": {"type": "array", "items": {"type": "number"}, "minItems": 2},
        "d": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}, "e": {"type": "string"}}}
    assert example_from_schema(schema) == {"a": "xxxxxx", "b": "x", "c": [0, 0], "d": True}


# -- as processes ---------------------------------------------------------------------------

@pytest.mark.parametrize("script, path, headers, args, check", [
    ("openai_server.py", "/chat/completions", {}, ["--reply", "hi from cli"],
     lambda b: b["choices"][0]["message"]["content"] == "hi from cli"),
    ("anthropic_server.py", "/v1/messages", ANTHROPIC_HEADERS, ["--reply-json", '{"k": 1}'],
     lambda b: json.loads(b["content"][0]["text"]) == {"k": 1}),
])
def test_cli_prints_its_url_and_serves(script, path, headers, args, check):
    proc = subprocess.Popen([sys.executable, str(FAKES / script), "--port", "0",
                             "--latency", "0.1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1") == (script == "openai_server.py")
        body = chat() if script == "openai_server.py" else message()
        status, answer = post(url + path, body, headers)
        assert status == 200 and check(answer)
    finally:
        proc.terminate()
        proc.wait(5)
    assert proc.returncode == 0, proc.stderr.read()
