"""The openai provider, with the real openai SDK, against the fake OpenAI server."""

from __future__ import annotations

import time

import pytest

from amelia.providers import ModelConfig, ProviderError, Request, Usage, provider_class
from amelia.providers import openai as openai_provider
from fakes import FakeOpenAI, Reply
from conftest import in_parallel

KEY = "sk-test-OPENAI-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch):
    # Anything that forgot its base_url goes to a closed local port, never to OpenAI.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    for var in ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def srv():
    with FakeOpenAI("Hello there world") as s:
        yield s


def make(srv, env=None, **cfg):
    """A provider for the fake: a base_url server that checks OPENAI_API_KEY."""
    cfg.setdefault("base_url", srv.base_url)
    cfg.setdefault("api_key_env", "OPENAI_API_KEY")
    cfg.setdefault("model", "gpt-test")
    cfg.setdefault("timeout", 5.0)
    config = ModelConfig(name="m", provider="openai", **cfg)
    return provider_class("openai")(config, {"OPENAI_API_KEY": KEY} if env is None else env)


def fails(provider, request=None, **kw) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.complete(request or Request(system="", prompt="hi"), **kw)
    assert KEY not in str(info.value) and KEY not in info.value.message
    return info.value


def test_plain_answer_and_request_shape(srv):
    got = make(srv).complete(Request(system="Be brief.", prompt="Say hello"))
    assert got.text == "Hello there world"
    assert got.stop_reason == "stop"
    assert got.model == "gpt-test"
    body = srv.last.body
    assert srv.last.path == "/v1/chat/completions"
    assert body["model"] == "gpt-test"
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say hello"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "temperature" not in body and "response_format" not in body
    assert "max_tokens" not in body and "max_completion_tokens" not in body


def test_no_system_message_when_empty(srv):
    make(srv).complete(Request(system="", prompt="hi"))
    assert [m["role"] for m in srv.last.body["messages"]] == ["user"]


def test_temperature_and_max_tokens(srv):
    make(srv, temperature=0.2, max_tokens=99).complete(Request(system="", prompt="hi"))
    assert srv.last.body["temperature"] == 0.2
    assert srv.last.body["max_tokens"] == 99  # a compatible server (base_url) gets max_tokens


def test_openai_itself_gets_max_completion_tokens_and_the_key(srv, monkeypatch):
    # No base_url: the SDK's default endpoint, pointed at the fake via OPENAI_BASE_URL.
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    config = ModelConfig(name="m", provider="openai", model="", max_tokens=50, timeout=5)
    provider = provider_class("openai")(config, {"OPENAI_API_KEY": KEY})
    got = provider.complete(Request(system="", prompt="hi"))
    assert got.text == "Hello there world"
    assert srv.last.body["model"] == openai_provider.DEFAULT_MODEL
    assert srv.last.body["max_completion_tokens"] == 50 and "max_tokens" not in srv.last.body
    assert srv.last.headers["authorization"] == f"Bearer {KEY}"


def test_keyless_server_gets_a_placeholder_key(srv):
    config = ModelConfig(name="m", provider="openai", model="llama", base_url=srv.base_url,
                         timeout=5)
    provider = provider_class("openai")(config, {"OPENAI_API_KEY": KEY})  # not for this server
    assert provider.complete(Request(system="", prompt="hi")).text == "Hello there world"
    assert srv.last.headers["authorization"] == "Bearer not-needed"


def test_stream_chunks_reach_on_text_in_order(srv):
    srv.enqueue(Reply(text="one two three four five"))
    seen = []
    got = make(srv).complete(Request(system="", prompt="count"), on_text=seen.append)
    assert seen == ["one ", "two ", "three ", "four ", "five"]
    assert "".join(seen) == got.text == "one two three four five"


def test_on_text_errors_pass_through(srv):
    def boom(_):
        raise KeyError("display broke")

    with pytest.raises(KeyError):
        make(srv).complete(Request(system="", prompt="hi"), on_text=boom)


def test_usage_mapped(srv):
    srv.enqueue(Reply(text="a b", usage={"input_tokens": 120, "output_tokens": 7,
                                         "cached_tokens": 64}))
    got = make(srv).complete(Request(system="", prompt="hi"))
    assert got.usage == Usage(input_tokens=120, output_tokens=7, cached_tokens=64)


def test_usage_counted_by_the_fake(srv):
    got = make(srv).complete(Request(system="one two", prompt="three four five"))
    assert got.usage == Usage(input_tokens=5, output_tokens=3, cached_tokens=0)


def test_structured_output(srv):
    schema = {"type": "object", "properties": {"title": {"type": "string"}},
              "required": ["title"]}
    srv.enqueue(Reply(json_obj={"title": "Amelia"}))
    got = make(srv).complete(Request(system="", prompt="name it", json_schema=schema))
    assert got.text == '{"title": "Amelia"}'
    assert srv.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": False}}


def test_structured_output_default_answer_fits_the_schema(srv):
    srv.reply = None  # the fake then answers with an instance of the schema
    schema = {"type": "object", "properties": {"n": {"type": "integer"},
                                               "tags": {"type": "array",
                                                        "items": {"type": "string"}}},
              "required": ["n", "tags"]}
    got = make(srv).complete(Request(system="", prompt="x", json_schema=schema))
    import json
    assert json.loads(got.text) == {"n": 0, "tags": ["xxxx"]}


def test_structured_output_non_object_schema_is_wrapped(srv):
    schema = {"type": "array", "items": {"type": "integer"}}
    srv.enqueue(Reply(json_obj={"value": [1, 2, 3]}))
    got = make(srv).complete(Request(system="", prompt="x", json_schema=schema))
    assert got.text == "[1, 2, 3]"
    sent = srv.last.body["response_format"]["json_schema"]["schema"]
    assert sent["type"] == "object" and sent["properties"]["value"] == schema


def test_structured_output_cut_off_by_max_tokens_is_not_retryable(srv):
    srv.enqueue(Reply(text='{"title": "Ame', stop_reason="length"))
    err = fails(make(srv, max_tokens=5),
                Request(system="", prompt="x", json_schema={"type": "object"}))
    assert not err.retryable and "max_tokens" in err.message


def test_plain_answer_cut_off_by_max_tokens_is_returned_with_its_stop_reason(srv):
    srv.enqueue(Reply(text="partial answ", stop_reason="length"))
    got = make(srv, max_tokens=2).complete(Request(system="", prompt="x"))
    assert got.text == "partial answ" and got.stop_reason == "length"


def test_history_turns(srv):
    history = ({"role": "user", "content": "first question"},
               {"role": "assistant", "content": "bad answer"})
    make(srv).complete(Request(system="sys", prompt="fix it", history=history))
    assert srv.last.body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "bad answer"},
        {"role": "user", "content": "fix it"}]


def test_shared_context_opens_the_first_user_turn(srv):
    make(srv).complete(Request(system="sys", prompt="question", shared_context="DOCS"))
    assert srv.last.body["messages"][1] == {"role": "user", "content": "DOCS\n\nquestion"}
    history = ({"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"})
    make(srv).complete(Request(system="sys", prompt="q2", shared_context="DOCS",
                               history=history))
    assert [m["content"] for m in srv.last.body["messages"]] == ["sys", "DOCS\n\nq1", "a1", "q2"]


def test_authorization_header_carries_the_key(srv):
    make(srv).complete(Request(system="", prompt="hi"))
    assert srv.last.headers["authorization"] == f"Bearer {KEY}"


def test_rate_limit_with_retry_after(srv):
    srv.enqueue(Reply(status=429, retry_after=7))
    err = fails(make(srv))
    assert err.retryable and err.retry_after == 7.0 and err.status == 429
    assert "rate limited" in err.message


def test_rate_limit_retry_after_as_http_date(srv):
    import email.utils
    srv.enqueue(Reply(status=429, retry_after=email.utils.formatdate(time.time() + 30,
                                                                     usegmt=True)))
    err = fails(make(srv))
    assert err.retryable and 25 <= err.retry_after <= 31


def test_rate_limit_without_retry_after(srv):
    srv.enqueue(Reply(status=429))
    err = fails(make(srv))
    assert err.retryable and err.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(srv, status):
    srv.enqueue(Reply(status=status))
    err = fails(make(srv))
    assert err.retryable and err.status == status


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retryable(srv, status):
    srv.enqueue(Reply(status=status, error_message=f"nope {status}"))
    err = fails(make(srv))
    assert not err.retryable and err.status == status
    assert f"nope {status}" in err.message


def test_bad_request_from_the_servers_own_validation(srv):
    srv.enqueue(Reply(status=400, error_message="Invalid schema for response_format 'answer'"))
    err = fails(make(srv), Request(system="", prompt="x", json_schema={"type": "object"}))
    assert not err.retryable and "Invalid schema" in err.message


def test_rejected_key_names_the_variable_and_not_the_key():
    with FakeOpenAI("hi", api_key="sk-the-right-key-000") as srv:
        err = fails(make(srv))
        assert srv.last.headers["authorization"] == f"Bearer {KEY}"
    assert not err.retryable and err.status == 401
    assert "OPENAI_API_KEY" in err.message and "rejected" in err.message
    assert KEY[-4:] not in err.message  # not even the masked echo of the key


def test_rejected_key_with_a_custom_variable():
    with FakeOpenAI("hi", api_key="right") as srv:
        err = fails(make(srv, env={"MY_GATEWAY_KEY": KEY}, api_key_env="MY_GATEWAY_KEY"))
    assert "MY_GATEWAY_KEY" in err.message and not err.retryable


def test_missing_key_names_the_variable(srv):
    err = fails(make(srv, env={}))
    assert not err.retryable and "OPENAI_API_KEY is not set" in err.message
    assert srv.requests == []


def test_timeout_is_retryable_and_quick(srv):
    srv.enqueue(Reply(hang=10))
    start = time.monotonic()
    err = fails(make(srv, timeout=0.3))
    assert time.monotonic() - start < 2
    assert err.retryable and "timeout" in err.message


def test_broken_stream_is_retryable(srv):
    srv.enqueue(Reply(text="one two three four five", break_stream_after=3))
    seen = []
    err = fails(make(srv), on_text=seen.append)
    assert err.retryable
    assert seen == ["one ", "two "]  # partial text was shown, but no Completion came back


def test_stream_ending_without_finish_reason_is_retryable(srv):
    srv.enqueue(Reply(text="one two three", end_stream_after=3))
    err = fails(make(srv))
    assert err.retryable and "stream ended before the answer was complete" in err.message


def test_error_event_inside_the_stream_is_retryable(srv):
    srv.enqueue(Reply(text="one two three", stream_error="server_error", end_stream_after=2))
    err = fails(make(srv))
    assert err.retryable and "error" in err.message


def test_connection_refused_is_retryable():
    with FakeOpenAI() as srv:
        url = srv.base_url
    config = ModelConfig(name="m", provider="openai", model="x", base_url=url, timeout=2)
    with pytest.raises(ProviderError) as info:
        provider_class("openai")(config, {}).complete(Request(system="", prompt="hi"))
    assert info.value.retryable and "could not reach" in info.value.message


def test_concurrent_calls_overlap():
    with FakeOpenAI("ok", latency=0.5) as srv:
        provider = make(srv)
        results = []

        def call():
            results.append(provider.complete(Request(system="", prompt="hi")).text)

        elapsed = in_parallel(call, 8)
        provider.close()
    assert results == ["ok"] * 8
    assert elapsed < 1.5
    assert srv.max_concurrent == 8


def test_close_and_reuse(srv):
    provider = make(srv)
    provider.complete(Request(system="", prompt="hi"))
    provider.close()
    assert provider.complete(Request(system="", prompt="hi")).text == "Hello there world"
    provider.close()


def test_retry_after_parsing():
    from amelia.providers._wire import retry_after_seconds as parse
    assert parse({"retry-after": "3"}) == 3.0
    assert parse({"retry-after": "1.5"}) == 1.5
    assert parse({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse({"retry-after": "soon"}) is None
    assert parse({}) is None and parse(None) is None
