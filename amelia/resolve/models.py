"""A document's `models:` → ModelConfig by name, with the built-in `default` and `--model`."""

from __future__ import annotations

from ..errors import did_you_mean
from ..model_config import ModelConfig

DEFAULT_MODEL = {"provider": "local"}  # `default` when the file declares none: offline


def model_configs(doc: dict, overrides: dict, err) -> dict:
    """name → ModelConfig for every model under `models:` (plus the built-in default).

    overrides: model name → the name of the model it stands for (`--model`).
    """
    declared = dict(doc.get("models") or {})
    declared.setdefault("default", DEFAULT_MODEL)
    out = {}
    for name, spec in declared.items():
        out[name] = model_config(name, spec)
    for name, target in overrides.items():
        if target not in out:
            err(f"--model {name}={target}: no model named '{target}'", ("models",),
                did_you_mean(target, out) or f"models are: {', '.join(out)}")
            continue
        out[name] = out[target]
    return out


def model_config(name: str, spec: dict) -> ModelConfig:
    """One model entry (a `models:` value, or a model written inline), resolved."""
    fields = {k: v for k, v in spec.items() if k in ModelConfig.__dataclass_fields__}
    return ModelConfig(name=name, **fields)
