"""API keys: the environment, over a `.env` file at the project root (DESIGN §4).

`.env` holds `KEY=VALUE` lines (optionally `export KEY=VALUE`), with `#` comments,
blank lines, and single-quoted (literal), double-quoted (with \\n, \\t, \\", \\\\ escapes)
or bare values; a bare value ends at ` #`. A variable set in the environment wins over
`.env`. Values are never logged or put in error messages: only variable names are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..safetext import add_secrets_from

DOTENV = ".env"

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str) -> dict[str, str]:
    """The variables a .env text sets; lines that are not assignments are skipped."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _LINE.match(line)
        if not m:
            continue
        name, rest = m.group(1), m.group(2)
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            # a quoted value may span lines until its closing quote
            while _closing(body, quote) < 0 and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _closing(body, quote)
            if end < 0:
                continue  # unterminated quote: skip rather than guess
            raw = body[:end]
            out[name] = _unescape(raw) if quote == '"' else raw
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0]
            out[name] = value.strip()
    return out


def _closing(body: str, quote: str) -> int:
    j = 0
    while j < len(body):
        c = body[j]
        if c == "\\" and quote == '"':
            j += 2
            continue
        if c == quote:
            return j
        j += 1
    return -1


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw)


def load_env(root: str | os.PathLike | None = None) -> dict[str, str]:
    """os.environ over the project's `.env`: the environment wins, unless its value is
    empty (an exported-but-empty variable does not hide the key in .env)."""
    env: dict[str, str] = {}
    path = Path(root or os.getcwd()) / DOTENV
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        text = ""
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    env.update(parse_dotenv(text))
    env.update((k, v) for k, v in os.environ.items() if v or k not in env)
    # Whatever looks like a credential is never shown again, in any message of this run.
    add_secrets_from(env)
    return env


def missing_keys(model_configs, root: str | os.PathLike | None = None,
                 env: dict | None = None) -> list[tuple[str, str, str]]:
    """(model name, provider, variable) for every model whose key variable is unset or
    empty. model_configs: ModelConfigs, or a {name: ModelConfig} mapping. env defaults
    to load_env(root)."""
    if env is None:
        env = load_env(root)
    configs = model_configs.values() if isinstance(model_configs, dict) else model_configs
    out = []
    seen = set()
    for cfg in configs:
        var = cfg.key_env()
        if not var or (env.get(var) or "").strip():
            continue
        item = (cfg.name, cfg.provider, var)
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def describe_missing(missing: list[tuple[str, str, str]]) -> str:
    """One line per missing key, naming the variable and where to set it."""
    return "\n".join(f"model {name!r} (provider {provider}) needs {var}: set it in the "
                     f"environment or in {DOTENV} at the project root"
                     for name, provider, var in missing)
