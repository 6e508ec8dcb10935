"""Keys from the environment over .env."""

from __future__ import annotations

import logging

from amelia.providers import ModelConfig
from amelia.providers.keys import describe_missing, load_env, missing_keys, parse_dotenv

DOTENV = r'''
# a comment
ANTHROPIC_API_KEY=sk-ant-file

export OPENAI_API_KEY = "sk-openai \"quoted\"\nline2"
SINGLE='lit\n$x # not a comment'
BARE=value # trailing comment
HASH=abc#def
EMPTY=
   INDENTED=yes
MULTI="one
two"
not an assignment
=novalue
SPACES=  padded value  
'''


def test_parse_dotenv():
    env = parse_dotenv(DOTENV)
    assert env == {
        "ANTHROPIC_API_KEY": "sk-ant-file",
        "OPENAI_API_KEY": 'sk-openai "quoted"\nline2',
        "SINGLE": r"lit\n$x # not a comment",
        "BARE": "value",
        "HASH": "abc#def",
        "EMPTY": "",
        "INDENTED": "yes",
        "MULTI": "one\ntwo",
        "SPACES": "padded value",
    }
    assert parse_dotenv('A="unterminated\nB=2') == {}
    assert parse_dotenv("A=1\r\nB='2'\r\n") == {"A": "1", "B": "2"}


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(DOTENV)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    env = load_env(tmp_path)
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-env"
    assert env["OPENAI_API_KEY"].startswith("sk-openai")
    assert env["HOME"]  # the rest of the environment is there too


def test_no_dotenv(tmp_path, monkeypatch):
    monkeypatch.setenv("X_ONLY_ENV", "1")
    env = load_env(tmp_path)
    assert env["X_ONLY_ENV"] == "1"
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FROM_CWD=1\n")
    assert load_env()["FROM_CWD"] == "1"


def models():
    return {
        "claude": ModelConfig(name="claude", provider="anthropic", model="claude-sonnet-4-5"),
        "gpt": ModelConfig(name="gpt", provider="openai", model="gpt-4o"),
        "ollama": ModelConfig(name="ollama", provider="openai", model="llama3.2",
                              base_url="http://localhost:11434/v1"),
        "groq": ModelConfig(name="groq", provider="openai", base_url="https://api.groq.com",
                            api_key_env="GROQ_API_KEY"),
        "default": ModelConfig(name="default", provider="local"),
        "cc": ModelConfig(name="cc", provider="claude-code"),
    }


def test_missing_keys(tmp_path, monkeypatch, caplog):
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-secret-value\nGROQ_API_KEY=\n")
    with caplog.at_level(logging.DEBUG):
        missing = missing_keys(models(), root=tmp_path)
    assert missing == [("claude", "anthropic", "ANTHROPIC_API_KEY"),
                       ("groq", "openai", "GROQ_API_KEY")]
    assert "sk-secret-value" not in caplog.text
    text = describe_missing(missing)
    assert "ANTHROPIC_API_KEY" in text and "GROQ_API_KEY" in text and "sk-" not in text
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    assert missing_keys(list(models().values()), root=tmp_path) == [
        ("groq", "openai", "GROQ_API_KEY")]
    assert missing_keys(models(), env={"GROQ_API_KEY": "g", "ANTHROPIC_API_KEY": "a",
                                       "OPENAI_API_KEY": "o"}) == []
    assert missing_keys([], root=tmp_path) == []


def test_an_empty_environment_variable_does_not_hide_the_dotenv_value(tmp_path, monkeypatch):
    from amelia.providers.keys import load_env

    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=from-dotenv\nOTHER=x\n")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.setenv("OTHER", "from-env")
    env = load_env(tmp_path)
    assert env["ANTHROPIC_API_KEY"] == "from-dotenv"
    assert env["OTHER"] == "from-env"


def test_load_env_makes_every_credential_a_secret_that_is_never_shown(tmp_path, monkeypatch):
    from amelia.safetext import REDACTED, redact

    token = "tok-" + "Gv5Bh7Nj9Mk1Lo3P" * 2
    (tmp_path / ".env").write_text(f"MY_SERVICE_TOKEN={token}\nGREETING=hello-world-value\n")
    monkeypatch.delenv("MY_SERVICE_TOKEN", raising=False)
    env = load_env(tmp_path)
    assert env["MY_SERVICE_TOKEN"] == token  # the value itself is unchanged
    assert redact(f"curl -H 'x: {token}'") == f"curl -H 'x: {REDACTED}'"
    assert redact("hello-world-value") == "hello-world-value"  # not named like a credential
