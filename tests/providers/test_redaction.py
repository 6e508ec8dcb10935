"""No part of a key in a provider's error, whatever the server or the HTTP library echoes
and however long the message is (the key is redacted before the message is cut); a key
with a line break inside is refused before it is sent (an HTTP library would quote it)."""

from __future__ import annotations

import pytest

from amelia.providers import ModelConfig, ProviderError, Request, provider_class
from amelia.safetext import FRAGMENT, REDACTED
from fakes import FakeAnthropic, FakeOpenAI, Reply

KEY = "sk-proj-" + "Jk8Hg6Fd4Sa2Lq0W" * 9 + "Pe3Ro5Ti7Yu9Mn1B" + "Zc"  # 164 characters
PROVIDERS = {"openai": (FakeOpenAI, "OPENAI_API_KEY"),
             "anthropic": (FakeAnthropic, "ANTHROPIC_API_KEY")}


@pytest.fixture(autouse=True)
def _forget_secrets():
    from amelia.safetext import forget_secrets

    yield
    forget_secrets()  # these keys are registered by the providers; later tests start clean


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def pieces(key: str) -> set:
    return {part[i:i + FRAGMENT] for part in key.split() for i in range(len(part) - FRAGMENT + 1)}


def error_of(name: str, reply: Reply, key: str = KEY) -> tuple:
    fake, var = PROVIDERS[name]
    with fake("unused") as srv:
        srv.enqueue(reply)
        config = ModelConfig(name="m", provider=name, base_url=srv.base_url, model="x",
                             api_key_env=var, timeout=5.0)
        provider = provider_class(name)(config, {var: key})
        with pytest.raises(ProviderError) as info:
            provider.complete(Request(system="", prompt="hi"))
        return info.value.message, srv


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("status", [403, 500])
@pytest.mark.parametrize("before", [0, 200, 290])  # the cut at 300 fell in the key or after
def test_a_key_in_a_long_server_error_is_redacted_before_the_cut(name, status, before):
    message, _ = error_of(name, Reply(status=status, error_message="y" * before + " key " + KEY
                                      + " z" * 100))
    assert not {p for p in pieces(KEY) if p in message}, message
    assert REDACTED in message or message.endswith("[red…")  # "[redacted]" itself may be cut


@pytest.mark.parametrize("name", PROVIDERS)
def test_markup_and_escape_sequences_in_a_server_error_are_shown_as_text(name):
    message, _ = error_of(name, Reply(status=500, error_message="[/bold] \x1b]0;pwned\x07 oops"))
    assert "[/bold] \\x1b]0;pwned\\x07 oops" in message and "\x1b" not in message


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_key_with_a_line_break_is_refused_before_it_is_sent(name):
    key = "sk-" + "Wd4Rf6Tg8Yh0Uj2I" * 4 + "\n" + "Mk1Nj3Bh5Vg7Cf9X" * 4
    message, srv = error_of(name, Reply(text="never"), key=key)
    assert "has a line break, space or control character inside" in message
    assert not srv.calls()
    assert not {p for p in pieces(key) if p in message}


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_key_with_a_trailing_line_break_is_trimmed_and_works(name):
    fake, var = PROVIDERS[name]
    with fake("fine", api_key=KEY) as srv:
        config = ModelConfig(name="m", provider=name, base_url=srv.base_url, model="x",
                             api_key_env=var, timeout=5.0)
        provider = provider_class(name)(config, {var: KEY + "\n"})
        got = provider.complete(Request(system="", prompt="hi"))
    assert got.text == "fine"
