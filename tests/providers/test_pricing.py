"""Cost from usage and list prices."""

from __future__ import annotations

import pytest

from amelia.providers import Usage
from amelia.providers.pricing import PRICES, Price, cost, price_for


@pytest.mark.parametrize("model, expected", [
    ("claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("claude-opus-4-5", "claude-opus-4-5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("GPT-4.1-nano", "gpt-4.1-nano"),
    ("gpt-4.1-mini", "gpt-4.1-mini"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"),
    ("o3", "o3"),
    ("o3-2025-04-16", "o3"),
    ("o3-mini", "o3-mini"),
    ("o4-mini", "o4-mini"),
    ("gpt-5", "gpt-5"),
    ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
])
def test_longest_prefix(model, expected):
    assert price_for(model) == PRICES[expected]


@pytest.mark.parametrize("model", ["gpt-5.1", "claude-opus-4-6", "llama3.2", "", "gpt-4",
                                   "gpt-4o-realtime-preview", "o3x", "claude-sonnet"])
def test_unknown_models_have_no_price(model):
    assert price_for(model) is None
    assert cost("openai", model, Usage(input_tokens=1000)) is None


def test_well_known_list_prices():
    assert price_for("claude-sonnet-4-5") == Price(3.0, 15.0, 0.30, 3.75)
    assert price_for("claude-haiku-4-5")[:2] == (1.0, 5.0)
    assert price_for("claude-opus-4-1")[:2] == (15.0, 75.0)
    assert price_for("gpt-4o")[:3] == (2.5, 10.0, 1.25)
    assert price_for("gpt-4o-mini")[:2] == (0.15, 0.60)
    assert price_for("gpt-5")[:3] == (1.25, 10.0, 0.125)


def test_cost_arithmetic():
    u = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_tokens=2_000_000,
              cache_write_tokens=400_000)
    # 3 + 1.5 + 0.6 + 1.5
    assert cost("anthropic", "claude-sonnet-4-5-20250929", u) == pytest.approx(6.6)
    # OpenAI: input_tokens (prompt_tokens) includes the cached ones; no cache-write rate
    assert cost("openai", "gpt-4.1-mini", Usage(input_tokens=500_000, output_tokens=10_000,
                                                cached_tokens=100_000, cache_write_tokens=10))\
        == pytest.approx(0.16 + 0.016 + 0.01 + 10 * 0.4 / 1e6)
    assert cost("openai", "gpt-4o", Usage(input_tokens=10, cached_tokens=10)) == \
        pytest.approx(10 * 1.25 / 1e6)
    assert cost("anthropic", "claude-haiku-4-5", Usage()) == 0.0


def test_local_and_claude_code():
    u = Usage(input_tokens=10_000, output_tokens=5_000)
    assert cost("local", "", u) == 0.0
    assert cost("local", "models/x.gguf", u) == 0.0
    assert cost("claude-code", "claude-sonnet-4-5", u) is None
    assert cost("claude-code", "sonnet", u, total_cost_usd=0.0123) == 0.0123
    assert cost("anthropic", "claude-sonnet-4-5", u, total_cost_usd=1) == 1.0
    assert cost("openai", "my-vllm-model", u, total_cost_usd=0.5) == 0.5
