"""JSON Schema validation of a loaded pipeline: every error at once, each located.

The schema file is the single definition of the format; this module only turns
jsonschema's findings into messages a person can act on.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

from .errors import PipelineError, did_you_mean
from .loader import Loaded

_HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_CANDIDATES = (
    os.path.join(_HERE, "schemas", "amelia.schema.json"),  # installed wheel
    os.path.join(os.path.dirname(_HERE), "schemas", "amelia.schema.json"),  # source tree
)


def schema_path() -> str:
    for p in SCHEMA_CANDIDATES:
        if os.path.exists(p):
            return p
    raise FileNotFoundError("amelia.schema.json is missing from the installation")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(schema_path(), encoding="utf-8") as f:
        return json.load(f)


def validate(loaded: Loaded) -> list[PipelineError]:
    """All schema errors of the document, in file order."""
    import jsonschema

    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    found: list[tuple[tuple, PipelineError]] = []
    seen = set()
    for err in validator.iter_errors(loaded.data):
        for leaf in _leaves(err):
            e = _translate(leaf, loaded)
            key = (e.location.path if e.location else "", e.message)
            if key in seen:
                continue
            seen.add(key)
            loc = e.location
            found.append(((loc.line, loc.col) if loc else (0, 0), e))
    found.sort(key=lambda t: t[0])
    return [e for _, e in found]


def _leaves(err):
    """For oneOf/anyOf, the errors of the branch that got furthest, not the wrapper."""
    if err.validator in ("oneOf", "anyOf") and err.context:
        import jsonschema.exceptions

        best = jsonschema.exceptions.best_match(err.context)
        # When every branch failed on type alone, the wrapper reads better.
        if all(c.validator == "type" for c in err.context):
            return [err]
        return list(_leaves(best))
    return [err]


def _expected_types(schema) -> str:
    branches = schema.get("oneOf") or schema.get("anyOf") or [schema]
    names = []
    for b in branches:
        if "$ref" in b:
            b = _resolve_ref(b["$ref"])
        t = b.get("type")
        if isinstance(t, list):
            names.extend(t)
        elif t:
            names.append(t)
    names = [("a list" if n == "array" else "a mapping" if n == "object" else f"a {n}")
             for n in dict.fromkeys(names)]
    return " or ".join(names) or "something else"


def _resolve_ref(ref: str) -> dict:
    node = load_schema()
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _translate(err, loaded: Loaded) -> PipelineError:
    path = tuple(err.absolute_path)
    where = _describe(path)
    v = err.validator
    hint = ""
    if v == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
        key = extras[0] if extras else "?"
        hint = did_you_mean(key, allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else "")
        return PipelineError(f"unknown key '{key}'{where}", loaded.source.locate(path + (key,)), hint)
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return PipelineError(f"missing required key '{missing}'{where}", loaded.source.locate(path),
                             _required_hint(missing))
    if v == "type" or v in ("oneOf", "anyOf"):
        expected = _expected_types(err.schema)
        return PipelineError(f"{_name(path)} must be {expected}, not {_type_name(err.instance)}",
                             loaded.source.locate(path))
    if v == "const":
        return PipelineError(f"{_name(path)} must be {json.dumps(err.validator_value)}",
                             loaded.source.locate(path),
                             "this version of amelia reads format version 1" if path == ("amelia",) else "")
    if v == "enum":
        choices = err.validator_value
        hint = did_you_mean(str(err.instance), [str(c) for c in choices]) or \
            "one of: " + ", ".join(str(c) for c in choices)
        return PipelineError(f"{_name(path)} has an unknown value {json.dumps(err.instance)}",
                             loaded.source.locate(path), hint)
    if v == "pattern":
        return PipelineError(f"{_name(path)}: {json.dumps(err.instance)} is not a valid name",
                             loaded.source.locate(path),
                             "use letters, digits, '_' and '-', starting with a letter or '_'")
    if v == "propertyNames":
        return PipelineError(f"{json.dumps(err.instance)} is not a valid name{where}",
                             loaded.source.locate(path), "use letters, digits, '_' and '-'")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                "exclusiveMaximum": "less than"}[v]
        return PipelineError(f"{_name(path)} must be {word} {err.validator_value}",
                             loaded.source.locate(path))
    if v in ("minLength", "minItems", "minProperties"):
        return PipelineError(f"{_name(path)} must not be empty", loaded.source.locate(path))
    if v == "uniqueItems":
        return PipelineError(f"{_name(path)} lists the same item twice", loaded.source.locate(path))
    return PipelineError(f"{_name(path)}: {err.message}", loaded.source.locate(path))


def _name(path: tuple) -> str:
    from .loader import format_path

    return f"'{format_path(path)}'" if path else "the file"


def _describe(path: tuple) -> str:
    from .loader import format_path

    if not path:
        return " at the top level"
    return f" in '{format_path(path)}'"


def _required_hint(key: str) -> str:
    return {
        "amelia": "start the file with `amelia: 1` (the format version)",
        "steps": "add a `steps:` mapping; each step runs a command or calls an agent",
        "provider": "one of: anthropic, openai, local, claude-code",
    }.get(key, "")
