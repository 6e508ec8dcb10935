"""The anthropic provider, with the real anthropic SDK, against the fake Anthropic server."""

from __future__ import annotations

import json
import time

import pytest

from amelia.providers import ModelConfig, ProviderError, Request, Usage, provider_class
from amelia.providers import anthropic as anthropic_provider
from fakes import FakeAnthropic, Reply
from conftest import in_parallel

KEY = "sk-ant-test-0123456789abcdefXYZ"
EPHEMERAL = {"type": "ephemeral"}
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                           "score": {"type": "integer"}},
          "required": ["title", "score"]}


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch):
    # Anything that forgot its base_url goes to a closed local port, never to Anthropic.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def srv():
    with FakeAnthropic("Hello there world") as s:
        yield s


def make(srv, env=None, **cfg):
    cfg.setdefault("base_url", srv.base_url)
    cfg.setdefault("model", "claude-test")
    cfg.setdefault("timeout", 5.0)
    config = ModelConfig(name="m", provider="anthropic", **cfg)
    return provider_class("anthropic")(config, {"ANTHROPIC_API_KEY": KEY} if env is None
                                       else env)


def fails(provider, request=None, **kw) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.complete(request or Request(system="", prompt="hi"), **kw)
    assert KEY not in str(info.value) and KEY not in info.value.message
    return info.value


def test_plain_answer_and_request_shape(srv):
    got = make(srv).complete(Request(system="Be brief.", prompt="Say hello"))
    assert got.text == "Hello there world"
    assert got.stop_reason == "end_turn"
    assert got.model == "claude-test"
    body = srv.last.body
    assert srv.last.path == "/v1/messages"
    assert body["model"] == "claude-test"
    assert body["stream"] is True
    assert body["max_tokens"] == 4096
    assert body["system"] == [{"type": "text", "text": "Be brief."}]  # short: not marked
    assert body["messages"] == [{"role": "user",
                                 "content": [{"type": "text", "text": "Say hello"}]}]
    assert "temperature" not in body and "tools" not in body


def test_default_model_and_max_tokens_and_no_temperature(srv):
    # API version 2026-10-21 (what SDK 2.x sends) rejects temperature: never sent.
    make(srv, model="", temperature=0, max_tokens=77).complete(Request(system="", prompt="x"))
    body = srv.last.body
    assert body["model"] == anthropic_provider.DEFAULT_MODEL
    assert body["max_tokens"] == 77
    assert "temperature" not in body and "system" not in body


def sent_key(request) -> str | None:
    """The key a recorded request carried (SDK 2.x: Authorization: Bearer; 1.x: x-api-key)."""
    auth = request.headers.get("authorization", "")
    return request.headers.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else None)


def test_the_key_goes_in_the_auth_header(srv):
    make(srv).complete(Request(system="", prompt="hi"))
    assert sent_key(srv.last) == KEY
    assert srv.last.headers.get("anthropic-version")


def test_stream_chunks_reach_on_text_in_order(srv):
    srv.enqueue(Reply(text="one two three four five"))
    seen = []
    got = make(srv).complete(Request(system="", prompt="count"), on_text=seen.append)
    assert seen == ["one ", "two ", "three ", "four ", "five"]
    assert got.text == "one two three four five"


def test_usage_mapped(srv):
    srv.enqueue(Reply(text="a b", usage={"input_tokens": 12, "output_tokens": 7,
                                         "cached_tokens": 900, "cache_write_tokens": 50}))
    got = make(srv).complete(Request(system="", prompt="hi"))
    assert got.usage == Usage(input_tokens=12, output_tokens=7, cached_tokens=900,
                              cache_write_tokens=50)


def test_shared_context_is_marked_for_caching(srv):
    provider = make(srv)
    request = Request(system="sys", prompt="the question", shared_context="big shared docs")
    first = provider.complete(request)
    user = srv.last.body["messages"][0]
    assert user["role"] == "user"
    assert user["content"] == [
        {"type": "text", "text": "big shared docs", "cache_control": EPHEMERAL},
        {"type": "text", "text": "the question"}]
    # The fake simulates the cache: written the first time, read the next.
    assert first.usage.cache_write_tokens == 4 and first.usage.cached_tokens == 0
    second = provider.complete(Request(system="sys", prompt="another question",
                                       shared_context="big shared docs"))
    assert second.usage.cached_tokens == 4 and second.usage.cache_write_tokens == 0
    assert second.usage.input_tokens == 2


def test_shared_context_stays_first_with_history(srv):
    history = ({"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"})
    make(srv).complete(Request(system="", prompt="q2", shared_context="DOCS", history=history))
    messages = srv.last.body["messages"]
    assert messages[0]["content"][0] == {"type": "text", "text": "DOCS",
                                         "cache_control": EPHEMERAL}
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][1]["text"] == "q1"


def test_long_system_prompt_is_marked_for_caching(srv):
    system = "You are careful. " * 100
    make(srv).complete(Request(system=system, prompt="hi"))
    assert srv.last.body["system"] == [{"type": "text", "text": system,
                                        "cache_control": EPHEMERAL}]


def test_structured_output_uses_a_forced_tool(srv):
    srv.enqueue(Reply(json_obj={"title": "Amelia", "score": 9}))
    seen = []
    got = make(srv).complete(Request(system="", prompt="rate it", json_schema=SCHEMA),
                             on_text=seen.append)
    assert json.loads(got.text) == {"title": "Amelia", "score": 9}
    assert json.loads("".join(seen)) == {"title": "Amelia", "score": 9}  # streamed JSON
    assert got.stop_reason == "tool_use"
    body = srv.last.body
    assert [t["name"] for t in body["tools"]] == ["answer"]
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


def test_structured_output_default_answer_fits_the_schema(srv):
    srv.reply = None
    got = make(srv).complete(Request(system="", prompt="x", json_schema=SCHEMA))
    assert json.loads(got.text) == {"title": "xxxx", "score": 0}


def test_structured_output_non_object_schema_is_wrapped(srv):
    schema = {"type": "array", "items": {"type": "string"}}
    srv.enqueue(Reply(json_obj={"value": ["a", "b"]}))
    got = make(srv).complete(Request(system="", prompt="x", json_schema=schema))
    assert json.loads(got.text) == ["a", "b"]
    sent = srv.last.body["tools"][0]["input_schema"]
    assert sent["type"] == "object" and sent["properties"]["value"] == schema


def test_structured_output_cut_off_by_max_tokens_is_not_retryable(srv):
    srv.enqueue(Reply(tool_json='{"title": "Ame', stop_reason="max_tokens"))
    err = fails(make(srv, max_tokens=5), Request(system="", prompt="x", json_schema=SCHEMA))
    assert not err.retryable and "max_tokens" in err.message


def test_structured_output_malformed_tool_json_is_retryable(srv):
    srv.enqueue(Reply(tool_json='{"title": oops}'))
    err = fails(make(srv), Request(system="", prompt="x", json_schema=SCHEMA))
    assert err.retryable


def test_structured_output_without_a_tool_call_returns_the_text(srv):
    # A gateway that drops tools: the text goes on to validation and repair attempts.
    answer = srv._answer
    srv._answer = lambda h, body, reply: answer(
        h, {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}, reply)
    srv.enqueue(Reply(text="plain words"))
    got = make(srv).complete(Request(system="", prompt="x", json_schema=SCHEMA))
    assert got.text == "plain words"


def test_history_turns(srv):
    history = ({"role": "user", "content": "first question"},
               {"role": "assistant", "content": "bad answer"})
    make(srv).complete(Request(system="", prompt="fix it", history=history))
    assert srv.last.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "bad answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "fix it"}]}]


def test_history_starting_with_the_assistant_gets_a_user_turn_first(srv):
    history = ({"role": "assistant", "content": "bad answer"},)
    make(srv).complete(Request(system="", prompt="fix it", history=history))
    assert [m["role"] for m in srv.last.body["messages"]] == ["user", "assistant", "user"]


def test_rate_limit_with_retry_after(srv):
    srv.enqueue(Reply(status=429, retry_after=12))
    err = fails(make(srv))
    assert err.retryable and err.retry_after == 12.0 and err.status == 429


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_and_overload_are_retryable(srv, status):
    srv.enqueue(Reply(status=status))
    err = fails(make(srv))
    assert err.retryable and err.status == status
    if status == 529:
        assert "overloaded" in err.message.lower()


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_client_errors_are_not_retryable(srv, status):
    srv.enqueue(Reply(status=status, error_message=f"nope {status}"))
    err = fails(make(srv))
    assert not err.retryable and err.status == status and f"nope {status}" in err.message


def test_rejected_key_names_the_variable_and_not_the_key():
    with FakeAnthropic("hi", api_key="sk-ant-the-right-one") as srv:
        err = fails(make(srv))
        assert sent_key(srv.last) == KEY
    assert not err.retryable and err.status == 401
    assert "ANTHROPIC_API_KEY" in err.message and "rejected" in err.message


def test_missing_key_names_the_variable(srv):
    err = fails(make(srv, env={}))
    assert not err.retryable and "ANTHROPIC_API_KEY is not set" in err.message
    assert srv.requests == []


def test_custom_key_variable(srv):
    make(srv, env={"CLAUDE_KEY": KEY}, api_key_env="CLAUDE_KEY").complete(
        Request(system="", prompt="hi"))
    assert sent_key(srv.last) == KEY
    err = fails(make(srv, env={"ANTHROPIC_API_KEY": KEY}, api_key_env="CLAUDE_KEY"))
    assert "CLAUDE_KEY is not set" in err.message


def test_timeout_is_retryable_and_quick(srv):
    srv.enqueue(Reply(hang=10))
    start = time.monotonic()
    err = fails(make(srv, timeout=0.3))
    assert time.monotonic() - start < 2
    assert err.retryable and "timeout" in err.message


def test_broken_stream_is_retryable(srv):
    # events: message_start, content_block_start, ping, then one delta per word
    srv.enqueue(Reply(text="one two three four five", break_stream_after=5))
    seen = []
    err = fails(make(srv), on_text=seen.append)
    assert err.retryable
    assert seen == ["one ", "two "]


def test_stream_ending_before_message_stop_is_retryable(srv):
    srv.enqueue(Reply(text="one two three", end_stream_after=7))  # all but message_stop
    err = fails(make(srv))
    assert err.retryable and "stream ended before the answer was complete" in err.message


def test_overloaded_error_event_inside_the_stream_is_retryable(srv):
    srv.enqueue(Reply(text="one two three", stream_error="overloaded_error", end_stream_after=3))
    err = fails(make(srv))
    assert err.retryable and err.status == 529


def test_invalid_request_error_event_inside_the_stream_is_not_retryable(srv):
    srv.enqueue(Reply(stream_error="invalid_request_error", end_stream_after=1))
    err = fails(make(srv))
    assert not err.retryable and err.status == 400


def test_connection_refused_is_retryable():
    with FakeAnthropic() as srv:
        url = srv.base_url
    config = ModelConfig(name="m", provider="anthropic", model="x", base_url=url, timeout=2)
    with pytest.raises(ProviderError) as info:
        provider_class("anthropic")(config, {"ANTHROPIC_API_KEY": KEY}).complete(
            Request(system="", prompt="hi"))
    assert info.value.retryable and KEY not in info.value.message


def test_empty_texts_never_reach_the_api_as_empty_blocks(srv):
    history = ({"role": "user", "content": "q"}, {"role": "assistant", "content": ""})
    make(srv).complete(Request(system="", prompt="again", history=history))
    assert srv.last.body["messages"][1]["content"][0]["text"]  # the fake would answer 400


def test_concurrent_calls_overlap():
    with FakeAnthropic("ok", latency=0.5) as srv:
        provider = make(srv)
        results = []

        def call():
            results.append(provider.complete(Request(system="", prompt="hi")).text)

        elapsed = in_parallel(call, 8)
        provider.close()
    assert results == ["ok"] * 8
    assert elapsed < 1.5
    assert srv.max_concurrent == 8
