"""LLM providers behind one small interface, chosen by `provider:` (DESIGN §4).

A provider turns a Request into a Completion, or raises ProviderError. Retries,
backoff, the circuit breaker and concurrency limits live in `resilience.py` and wrap
every provider the same way; a provider makes exactly one attempt per call.
Provider modules (and their SDKs) are imported only when a step calls a model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

# ModelConfig (and its defaults) is data of the pipeline model; re-exported here for
# every importer of amelia.providers.
from ..model_config import DEFAULT_RETRIES, DEFAULT_TIMEOUT, KEY_ENV, ModelConfig  # noqa: F401

# provider name → module; each module defines `Provider` (see ProviderBase).
MODULES = {
    "anthropic": "amelia.providers.anthropic",
    "openai": "amelia.providers.openai",
    "local": "amelia.providers.local",
    "claude-code": "amelia.providers.claude_code",
}


@dataclass(frozen=True)
class Request:
    system: str
    prompt: str
    json_schema: dict | None = None  # ask for structured output constrained to this schema
    # Earlier turns, for repair attempts: [{"role": "assistant"|"user", "content": str}]
    history: tuple = ()
    # Text shared by many calls (e.g. retrieved context) that prompt caching may mark.
    shared_context: str = ""
    workdir: str | None = None  # where a tool-using provider (claude-code) works
    # Where a provider that runs a program (claude-code) starts it: `spawn(args, **popen)`
    # and `release(proc)` (processes.StepProcesses), so that the program is stopped with its
    # step and never outlives the run. None: a plain subprocess in a session of its own.
    processes: object | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # input tokens served from the provider's prompt cache
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str  # the answer; for structured output, the JSON text
    usage: Usage = field(default_factory=Usage)
    model: str = ""  # the model id the provider reports
    stop_reason: str = ""
    cost_usd: float | None = None  # when the provider reports what the call cost


class ProviderError(Exception):
    """One failed attempt. `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, retryable: bool = False, retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class ProviderBase:
    """The interface. Subclasses set `name` and implement `complete`."""

    name = ""

    def __init__(self, config: ModelConfig, env: dict):
        self.config = config
        self.env = env  # os.environ plus .env: where keys are read from

    def api_key(self) -> str | None:
        var = self.config.key_env()
        return self.env.get(var) if var else None

    def warm(self) -> None:
        """Get ready for calls (load a model, make a client) before the first one is timed."""

    def complete(self, request: Request, on_text=None) -> Completion:
        """One attempt. on_text(chunk) is called as streamed text arrives.

        Must raise ProviderError (never return) when the answer is incomplete, e.g. a
        stream that ended before its final event: a cut-off answer is never cached.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release clients, models, processes."""


def provider_class(name: str):
    return importlib.import_module(MODULES[name]).Provider
