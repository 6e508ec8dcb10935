"""The earlier turns sent with a prompt: as many of the newest whole turns (a question
and its answer) as fit a budget, the oldest left out first.

The budget is in characters (about 4 per token), well under the model's context, so
that the new prompt, a grounded turn's excerpts and the answer still fit: the bundled
local model has 4,096 tokens of context in all; remote models far more.
"""

from __future__ import annotations

BUDGET = 48_000  # ~12k tokens
LOCAL_BUDGET = 6_000  # ~1.5k tokens of the local model's 4,096


def budget(config) -> int:
    return LOCAL_BUDGET if config.provider == "local" else BUDGET


def turns(messages) -> list[tuple]:
    """ChatMessages → [(question, answer)], in order; a question without an answer is dropped."""
    out = []
    question = None
    for m in messages:
        if m.role == "user":
            question = m.content
        elif m.role == "assistant" and question is not None:
            out.append((question, m.content))
            question = None
    return out


def trim(messages, limit: int) -> tuple[list[dict], int]:
    """(history for Request.history, how many earlier turns were left out)."""
    pairs = turns(messages)
    kept: list[tuple] = []
    used = 0
    for question, answer in reversed(pairs):
        size = len(question) + len(answer)
        if used + size > limit:
            break
        kept.append((question, answer))
        used += size
    kept.reverse()
    history = [m for q, a in kept for m in ({"role": "user", "content": q},
                                            {"role": "assistant", "content": a})]
    return history, len(pairs) - len(kept)
