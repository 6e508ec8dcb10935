"""Model calls for one run: provider instances, keys, limits, retries, accounting.

Agent steps call `ModelSession.call`; everything around the provider's single
attempt (per-model concurrency, retries with backoff, the circuit breaker, usage
and cost) happens here, the same way for every provider.
"""

from __future__ import annotations

import threading

from .providers import Completion, ModelConfig, Request, provider_class


def _warm(provider) -> None:
    from .providers import ProviderError

    try:
        provider.warm()
    except ProviderError:
        pass  # the call itself reports it, with retries where they apply


def limit_key(config: ModelConfig) -> str:
    """Calls to one model share one concurrency limit."""
    return f"{config.name}|{config.provider}|{config.model}|{config.base_url or ''}"


def concurrency(config: ModelConfig) -> int | None:
    """How many calls to this model may run at once; None: as many as --jobs allows."""
    if config.concurrency:
        return config.concurrency
    return 1 if config.provider == "local" else None  # local holds one model in memory


class ModelSession:
    def __init__(self, root: str, emit_usage, jobs: int):
        from .providers.keys import load_env

        self.env = dict(load_env(root))
        self.env.setdefault("AMELIA_ROOT", root)
        self.emit_usage = emit_usage  # (step, config, CallResult, cost) → None
        self.jobs = jobs
        self._providers: dict = {}
        self._lock = threading.Lock()

    def _provider(self, config: ModelConfig):
        key = (config.provider, config.model, config.base_url, config.api_key_env,
               config.temperature, config.max_tokens, config.timeout)
        with self._lock:
            if key not in self._providers:
                self._providers[key] = provider_class(config.provider)(config, self.env)
            return self._providers[key]

    def call(self, step_id: str, config: ModelConfig, request: Request, on_text=None) -> Completion:
        from .providers import pricing, resilience

        provider = self._provider(config)
        breaker = resilience.breaker_for(resilience.breaker_key(config.provider, config.base_url))
        with resilience.LIMITER.slot(limit_key(config), concurrency(config)):
            # A model load is a one-off cost of the run, not part of the call's latency.
            _warm(provider)
            result = resilience.call(provider, request, retries=config.retries, breaker=breaker,
                                     on_text=on_text)
        completion = result.completion
        cost = pricing.cost(config.provider, completion.model or config.model, completion.usage,
                            total_cost_usd=completion.cost_usd)
        # latency: the attempt that answered; time spent on failed attempts and backoff
        # shows as retries.
        self.emit_usage(step_id, config, completion, result.retries, result.latency, cost)
        return completion

    def close(self) -> None:
        for p in self._providers.values():
            try:
                p.close()
            except Exception:  # closing is best effort
                pass
