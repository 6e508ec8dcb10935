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


def param_values(data: dict, overrides: dict, placeholders: bool, err, from_files: dict | None = None,
                 given: dict | None = None) -> dict:
    """name → value of each param a document declares, and of each its params files give.

    overrides: name → raw `-p` text (the root document's; an include's `with:` later); a
    dotted name (`train.n_est`) sets a leaf below a param object (params_files.set_leaf).
    placeholders: a param without a value gets a stand-in of its type (checking only).
    from_files: name → value read from `params_files` (params_files.read_params_files).
    A bad default is an error at it (err); a bad or missing value is a UsageError.
    """
    declared = data.get("params") or {}
    from_files = from_files or {}
    overrides = dict(overrides)
    # -p for params files' keys and for leaves of objects: set after the declared ones.
    later = {n: overrides.pop(n) for n in list(overrides) if "." in n or n in from_files}
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
    values.update(given or {})  # an include's `with:`: typed and checked already (include.bind)
    for name, raw in overrides.items():
        if name not in declared:
            known = list(declared) + list(from_files)
            hint = did_you_mean(name, known) or (
                f"declared params: {', '.join(known)}" if known else "this pipeline declares no params")
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
    return _with_files(values, from_files, later)


def _with_files(values: dict, from_files: dict, later: dict) -> dict:
    """The declared values, the files' values, and the -p overrides of either's leaves."""
    import copy

    from .params_files import coerce_like, set_leaf

    values.update(copy.deepcopy(from_files))  # -p edits a copy, never the parsed file
    for name, raw in later.items():
        if "." not in name:  # a whole top-level key of a params file
            values[name] = coerce_like(name, values[name], raw)
            continue
        if name.split(".")[0] not in values:
            known = list(values)
            raise UsageError(f"unknown param '{name}' given with -p",
                             hint=did_you_mean(name.split(".")[0], known) or
                             (f"params: {', '.join(known)}" if known else "this pipeline declares no params"))
        set_leaf(values, name, raw)
    return values
