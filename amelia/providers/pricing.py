"""What a call cost, in USD, from its token usage and public list prices.

Prices are USD per million tokens: (input, output, cached input, cache write). They are
the providers' public list prices for standard (non-batch) API use as of 2025-11; check
https://www.anthropic.com/pricing and https://openai.com/api/pricing when updating.
Anthropic's cache write is the 5-minute TTL rate (1.25 × input); Sonnet's long-context
rate (prompts over 200K tokens) is not modelled.

Usage convention: each provider reports usage the way its API does. For `anthropic`
(and `claude-code`), `input_tokens` excludes `cached_tokens` (read from the prompt cache)
and `cache_write_tokens` (written to it); for `openai`, `input_tokens` is the API's
`prompt_tokens`, which includes `cached_tokens`. `cost()` bills the uncached part at the
input rate either way (INPUT_INCLUDES_CACHED lists the providers of the second kind).

A model id is matched by its longest listed prefix that ends at a "-" (or Vertex's "@")
boundary, so "claude-sonnet-4-5-20250929" is priced as "claude-sonnet-4-5" and
"gpt-4o-mini-2024-07-18" as "gpt-4o-mini", but "gpt-5.1" matches nothing: unknown
models cost None, never a guess.
"""

from __future__ import annotations

from typing import NamedTuple

from amelia.providers import Usage

AS_OF = "2025-11"


class Price(NamedTuple):
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    cached_input: float  # USD per million input tokens read from the prompt cache
    cache_write: float | None = None  # USD per million tokens written to the cache; None: input


PRICES: dict[str, Price] = {
    # Anthropic
    "claude-opus-4-5": Price(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4-0": Price(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4-20250514": Price(15.00, 75.00, 1.50, 18.75),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4-0": Price(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4-20250514": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08, 1.00),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.30),
    # OpenAI (cached input is billed at the cached rate; there is no cache-write charge)
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00, 5.00),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o3-pro": Price(20.00, 80.00, 20.00),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-5-pro": Price(15.00, 120.00, 15.00),
}

# Variants priced differently from the model they extend, which we do not list: None.
UNPRICED = ("gpt-4o-realtime", "gpt-4o-mini-realtime", "gpt-4o-audio", "gpt-4o-mini-audio",
            "o3-deep-research", "o4-mini-deep-research")

# Providers whose calls cost nothing per token.
FREE_PROVIDERS = {"local"}
# Providers whose Usage.input_tokens includes Usage.cached_tokens (OpenAI's prompt_tokens).
INPUT_INCLUDES_CACHED = {"openai"}


def price_for(model: str) -> Price | None:
    """The listed price for a model id (longest prefix at a "-"/"@" boundary), or None."""
    model = (model or "").strip().lower()
    if any(_matches(model, prefix) for prefix in UNPRICED):
        return None
    best = None
    for prefix in PRICES:
        if _matches(model, prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PRICES[best] if best else None


def _matches(model: str, prefix: str) -> bool:
    return model == prefix or model.startswith(prefix + "-") or model.startswith(prefix + "@")


def cost(provider: str, model: str, usage: Usage,
         total_cost_usd: float | None = None) -> float | None:
    """USD for one call, or None when unknown.

    total_cost_usd: a cost the provider reported itself (the Claude Code CLI's
    `total_cost_usd`); it wins. `local` costs 0.0; `claude-code` without a reported cost
    is None (a subscription, or a price we cannot see).
    """
    if total_cost_usd is not None:
        return float(total_cost_usd)
    if provider in FREE_PROVIDERS:
        return 0.0
    if provider == "claude-code":
        return None
    price = price_for(model)
    if price is None:
        return None
    write = price.input if price.cache_write is None else price.cache_write
    uncached = usage.input_tokens
    if provider in INPUT_INCLUDES_CACHED:
        uncached = max(0, uncached - usage.cached_tokens)
    return (uncached * price.input + usage.output_tokens * price.output
            + usage.cached_tokens * price.cached_input + usage.cache_write_tokens * write) / 1e6
