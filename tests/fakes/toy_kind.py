"""A toy step kind, registered by a test through the registry alone (tests/steps/test_kinds.py).

    steps:
      hello:
        toy: {text: "Hello ${{ params.who }}", times: 2}
        output: out/hello.txt

Writes `text`, its references filled in, `times` times (default 1) to the step's output.
It has every hook a kind may have: a typed config, resolve, key material, models and
execute; nothing outside this module and one KINDS entry knows about it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from amelia import templates
from amelia.steps import Resolved, StepError

MODEL = None  # a ModelConfig that `models` reports, set by a test


@dataclass(frozen=True)
class ToyConfig:
    text: str  # a template
    times: int = 1


CONFIG = ToyConfig


def resolve(ctx, sid: str, data: dict) -> Resolved:
    spec = data["toy"]
    path = ctx.base + ("toy",)
    if not isinstance(spec, dict) or not isinstance(spec.get("text"), str):
        ctx.err(f"toy step '{sid}' needs `toy: {{text: ...}}`", path, "give it the text to write")
        return Resolved(None)
    texts = ((spec["text"], path + ("text",), None),)
    times = spec.get("times", 1)
    if not isinstance(times, int) or times < 1:
        ctx.err(f"toy step '{sid}': times must be a positive integer", path + ("times",))
        return Resolved(None, texts)
    if "output" not in data:
        ctx.err(f"toy step '{sid}' has no `output:` file", ctx.base)
        return Resolved(None, texts)
    return Resolved(ToyConfig(spec["text"], times), texts)


def key_material(config: ToyConfig) -> dict:
    """The text and the count as resolved: `times: 1` written or left out is one key."""
    return {"toy": {"text": config.text, "times": config.times}}


def models(step) -> list:
    return [MODEL] if MODEL is not None else []


def execute(step, ctx, cancel):
    cancel.check()
    values = ctx.template_values(step, limit=None)
    text = templates.substitute(step.config.text, lambda ref: values[templates.env_name(ref)])
    if not step.outputs:
        raise StepError("no output")
    path = os.path.join(ctx.root, step.outputs[0])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join([text] * step.config.times) + "\n")
