"""A model entry of the pipeline file, resolved: plain data of the pipeline model.

`models:` entries and inline models become ModelConfig at resolve time. It lives here,
not in providers, so that the pipeline model (loader, schema, resolve, spec, keys) never
imports the providers (DESIGN §1); `amelia.providers` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The environment variable holding each provider's key, unless `api_key_env:` says.
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}

# Providers whose calls edit files in their working directory (a coding agent): such a step
# always works in a git worktree, never in the user's checkout (targets.py).
EDITS_FILES = frozenset({"claude-code"})
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class ModelConfig:
    """One entry of `models:` (or an inline model), resolved."""

    name: str  # its key under models:, or "<inline>"
    provider: str
    model: str = ""  # the provider's model id; "" means the provider's default
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    concurrency: int | None = None  # None: remote = --jobs, local = 1

    def key_env(self) -> str | None:
        """The variable that must hold this model's key, or None when it needs none."""
        if self.api_key_env:
            return self.api_key_env
        if self.provider == "openai" and self.base_url:
            return None  # a local OpenAI-compatible server (Ollama, vLLM) takes any key
        return KEY_ENV.get(self.provider)

    def key_material(self) -> dict:
        """What changes an answer: part of the cache key (keys.model_material). Never the key itself."""
        from .keys import model_material

        return model_material(self)
