"""A document's params: declared defaults, `-p` overrides, types and enums → values."""

from __future__ import annotations

import json

from ..errors import UsageError, did_you_mean

# Values that stand in for params without one when a file is only checked (validate, graph).
PLACEHOLDERS = {"integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}

_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict}


def coerce_param(name: str, ptype: str | None, raw: str):
    """A `-p name=value` string as the param's declared type."""
    if ptype in (None, "string"):
        return raw
    try:
        if ptype == "integer":
            return int(raw)
        if ptype == "number":
            return float(raw)
        if ptype == "boolean":
            low = raw.lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            raise ValueError(raw)
        value = json.loads(raw)
        if ptype == "array" and isinstance(value, list) or ptype == "object" and isinstance(value, dict):
            return value
        raise ValueError(raw)
    except ValueError:
        raise UsageError(
            f"param '{name}' must be {_article(ptype)} {ptype}, got {raw!r}",
            hint="arrays and objects are given as JSON, e.g. -p tags='[\"a\",\"b\"]'"
            if ptype in ("array", "object") else "",
        ) from None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _type_ok(ptype: str | None, value) -> bool:
    if ptype is None:
        return True
    if ptype in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[ptype])


def param_values(data: dict, overrides: dict, placeholders: bool, err) -> dict:
    """name → value of each param a document declares.

    overrides: name → raw `-p` text (the root document's; an include's `with:` later).
    placeholders: a param without a value gets a stand-in of its type (checking only).
    A bad default is an error at it (err); a bad or missing value is a UsageError.
    """
    declared = data.get("params") or {}
    values = {}
    for name, spec in declared.items():
        ptype = spec.get("type")
        if "default" in spec:
            default = spec["default"]
            if not _type_ok(ptype, default):
                err(f"default of param '{name}' is not {_article(ptype)} {ptype}",
                    ("params", name, "default"),
                    "remove the quotes: a quoted value is a string"
                    if isinstance(default, str) and ptype != "string" else "")
            elif spec.get("enum") and default not in spec["enum"]:
                err(f"default of param '{name}' is not one of its enum values",
                    ("params", name, "default"),
                    did_you_mean(str(default), [str(v) for v in spec["enum"]]) or
                    "one of: " + ", ".join(map(str, spec["enum"])))
            values[name] = default
    for name, raw in overrides.items():
        if name not in declared:
            hint = did_you_mean(name, declared) or (
                f"declared params: {', '.join(declared)}" if declared else "this pipeline declares no params")
            raise UsageError(f"unknown param '{name}' given with -p", hint=hint)
        values[name] = coerce_param(name, declared[name].get("type"), raw)
    for name, spec in declared.items():
        if name not in values and placeholders:
            # Checking the file needs no values: a stand-in of the right type will do.
            values[name] = PLACEHOLDERS.get(spec.get("type"), f"<{name}>")
            continue
        if name not in values:
            raise UsageError(f"param '{name}' has no default and no value",
                             hint=f"pass it: amelia run -p {name}=VALUE")
        allowed = spec.get("enum")
        if allowed and name in overrides and values[name] not in allowed:
            raise UsageError(f"param '{name}' must be one of {', '.join(map(str, allowed))}, "
                             f"got {values[name]!r}",
                             hint=did_you_mean(str(values[name]), [str(v) for v in allowed]))
    return values
