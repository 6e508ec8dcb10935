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


_ANNOTATIONS = ("description", "title", "$comment")


_INLINED: dict = {}  # id of the schema → (the schema, its inlined form)


def _inlined() -> dict:
    """The schema with every `$ref` replaced by what it names, and no annotations: the
    same rules, checked without a reference lookup per value (2-3x faster on a file of
    thousands of steps). Made once per schema object (a test may swap load_schema)."""
    schema = load_schema()
    hit = _INLINED.get(id(schema))
    if hit is None or hit[0] is not schema:
        _INLINED.clear()
        hit = _INLINED[id(schema)] = (schema, _inline(schema))
    return hit[1]


def _inline(schema: dict) -> dict:
    """See _inlined. A recursive reference is kept (with the $defs it needs)."""
    defs = schema.get("$defs", {})

    def inline(node, seen: tuple):
        if isinstance(node, list):
            return [inline(x, seen) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "")
        name = ref[len("#/$defs/"):] if ref.startswith("#/$defs/") else None
        # An annotation's value is text; a property named "description" has a schema.
        rest = {k: v for k, v in node.items() if k != "$ref" and not _annotation(k, v)}
        if name in defs and name not in seen and not rest:
            return inline(defs[name], seen + (name,))
        if name is not None and name in seen:
            return node  # recursive: left to the validator (needs $defs, kept below)
        return {k: inline(v, seen) for k, v in node.items()
                if not _annotation(k, v) and not (k == "$defs" and not seen)}

    out = inline(schema, ())
    if "$defs" in schema and _has_ref(out):
        out["$defs"] = schema["$defs"]
    return out


def _annotation(key: str, value) -> bool:
    return key in _ANNOTATIONS and isinstance(value, str)


def _has_ref(node) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(v) for v in node.values())
    return isinstance(node, list) and any(_has_ref(v) for v in node)


def validate(loaded: Loaded) -> list[PipelineError]:
    """All schema errors of the document, in file order."""
    import jsonschema

    if loaded.data == {} and not loaded.source.positions:
        from .errors import Location

        return [PipelineError("the file is empty", Location(loaded.source.file),
                              "start with `amelia: 1` and a `steps:` mapping")]
    validator = jsonschema.Draft202012Validator(_inlined())
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
    reported = {e.location.path for _, e in found if e.location}
    for e in _non_finite(loaded):
        if e.location.path not in reported:  # -.inf for a timeout: "must be more than 0" says it
            found.append(((e.location.line, e.location.col), e))
    found.sort(key=lambda t: t[0])
    return [e for _, e in found]


def _non_finite(loaded: Loaded) -> list:
    """`.nan` and `.inf` (YAML has them, JSON does not): a timeout of .inf is no bound and
    .nan passes every comparison the schema makes (`> 0`), so each is an error here.
    Walked without recursion (the loader bounds the depth, but costs nothing to be safe)."""
    import math

    out = []
    stack = [((), loaded.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            word = "not a number (.nan)" if math.isnan(value) else "infinite"
            out.append(PipelineError(f"{_name(path)} is {word}", loaded.source.locate(path),
                                     "give a finite number (YAML's .nan and .inf are not)"))
    return out


def _leaves(err):
    """For oneOf/anyOf, the errors of the branch the value was meant for, not the wrapper.

    A branch whose type does not fit the value is out; of the rest, the first one's
    errors are reported (e.g. for `inputs: [3]`, the list branch's "[0] must be a
    string"). When no branch takes the value's type, the wrapper reads best.
    """
    if err.validator in ("oneOf", "anyOf") and _required_choice(err.validator_value):
        return [err]  # "needs `paths:` or `urls:`" reads better than the first branch's miss
    if err.validator in ("oneOf", "anyOf") and err.context:
        branches: dict[int, list] = {}
        for c in err.context:
            branches.setdefault(c.relative_schema_path[0], []).append(c)
        fitting = [errs for _, errs in sorted(branches.items())
                   if not any(c.validator == "type" and not c.relative_path for c in errs)]
        if len(branches) < len(err.validator_value):
            return [err]  # some branch matched: oneOf failed on matching two
        if not fitting:
            return [err]
        out = []
        for c in fitting[0]:
            out.extend(_leaves(c))
        return out
    return [err]


def _required_choice(branches) -> list:
    """The keys of an anyOf whose branches each only require a key (one of them must be
    there), else []."""
    if isinstance(branches, list) and branches and all(
            isinstance(b, dict) and set(b) == {"required"} and len(b["required"]) == 1 for b in branches):
        return [b["required"][0] for b in branches]
    return []


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
    if v == "dependentRequired":
        have = next((k for k, needed in err.validator_value.items()
                     if isinstance(err.instance, dict) and k in err.instance
                     and any(n not in err.instance for n in needed)), "?")
        missing = [n for n in err.validator_value.get(have, ()) if n not in err.instance]
        return PipelineError(f"'{have}' needs '{missing[0] if missing else '?'}'{where}",
                             loaded.source.locate(path + (have,)),
                             "an agent step has `agent:` (who answers) and `prompt:` (what to ask)"
                             if have in ("agent", "prompt") else
                             f"`{have}` is a setting of `run:` steps; remove it from this step")
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return PipelineError(f"missing required key '{missing}'{where}", loaded.source.locate(path),
                             _required_hint(missing))
    if v in ("oneOf", "anyOf") and _required_choice(err.validator_value):
        choice = _required_choice(err.validator_value)
        if not path and choice[0] == "steps":  # a file of sources only is one too
            return PipelineError("missing required key 'steps' at the top level", loaded.source.locate(path),
                                 _required_hint("steps") + " (or declare `sources:` only, to index documents, or `include:` recipes)")
        keys = " or ".join(f"`{k}:`" for k in choice)
        return PipelineError(f"{_name(path)} needs {keys}", loaded.source.locate(path),
                             f"give it {keys}")
    if v == "type" or v in ("oneOf", "anyOf"):
        expected = _expected_types(err.schema)
        if err.instance is None:
            return PipelineError(f"{_name(path)} is empty; it must be {expected}",
                                 loaded.source.locate(path), "give it a value, or remove the key")
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
    if v == "pattern" and "propertyNames" in err.absolute_schema_path:
        # A key is wrong: point at the key, not at the mapping that holds it.
        return PipelineError(f"{json.dumps(err.instance)} is not a valid name{where}",
                             loaded.source.locate(path + (err.instance,)), _pattern_hint(err.validator_value))
    if v == "pattern":
        return PipelineError(f"{_name(path)}: {json.dumps(err.instance)} is not a valid name",
                             loaded.source.locate(path), _pattern_hint(err.validator_value))
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                "exclusiveMaximum": "less than"}[v]
        return PipelineError(f"{_name(path)} must be {word} {err.validator_value}",
                             loaded.source.locate(path))
    if v in ("minLength", "minItems", "minProperties"):
        return PipelineError(f"{_name(path)} must not be empty", loaded.source.locate(path))
    if v == "uniqueItems":
        items = err.instance if isinstance(err.instance, list) else []
        dup = next((i for i, x in enumerate(items) if x in items[:i]), None)
        if dup is None:
            return PipelineError(f"{_name(path)} lists the same item twice", loaded.source.locate(path))
        return PipelineError(f"{_name(path)} lists {json.dumps(items[dup])} twice",
                             loaded.source.locate(path + (dup,)), "remove one of them")
    return PipelineError(f"{_name(path)}: {err.message}", loaded.source.locate(path))


def _name(path: tuple) -> str:
    from .loader import format_path

    return f"'{format_path(path)}'" if path else "the file"


def _describe(path: tuple) -> str:
    from .loader import format_path

    if not path:
        return " at the top level"
    return f" in '{format_path(path)}'"


def _pattern_hint(pattern: str) -> str:
    if pattern == "^[A-Za-z_][A-Za-z0-9_-]*$":
        return "use letters, digits, '_' and '-', starting with a letter or '_'"
    if pattern == "^[A-Za-z_][A-Za-z0-9_]*$":
        return "use letters, digits and '_', starting with a letter or '_'"
    if pattern == "^[A-Za-z0-9][A-Za-z0-9_.-]*$":
        return "use letters, digits, '.', '_' and '-', starting with a letter or digit"
    return f"it must match {pattern}" if pattern else ""


def _required_hint(key: str) -> str:
    return {
        "amelia": "start the file with `amelia: 1` (the format version)",
        "steps": "add a `steps:` mapping; each step runs a command or calls an agent",
        "provider": "one of: anthropic, openai, local, claude-code",
    }.get(key, "")
