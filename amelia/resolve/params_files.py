"""`params_files:`: YAML or JSON files whose top-level keys become params (DVC's params.yaml).

A file is read at resolve time; its (path, sha256) goes into the pipeline's sources, so
a cached resolution is redone when it changes. A step's key covers only the leaves it
reads (`${{ params.train.n_est }}`) or lists (`params: [train.n_est]`), so a comment, a
reordering or an edit to a key no step reads re-runs nothing.

`-p train.n_est=60` sets one leaf (`set_leaf`): the text is read as a YAML scalar and
kept in the type of the value it replaces where that makes sense.
"""

from __future__ import annotations

import json

from ..errors import UsageError, did_you_mean
from .files import read_text_file


def read_params_files(data: dict, root: str, declared: dict, err) -> tuple[dict, tuple, bool]:
    """(name → value of every top-level key of the files, ((path, sha256), ...), whether
    every file was read).

    declared: the document's `params:` (a name in both is an error at the file's entry).
    Errors are reported at the file's entry under `params_files` (err)."""
    files = data.get("params_files") or []
    values: dict = {}
    origin: dict = {}  # name → the file that gave it
    sources = []
    complete = True
    for i, rel in enumerate(files):
        where = ("params_files", i)
        text, sha = read_text_file(root, rel)
        if text is None:  # sha holds why
            why = sha.removeprefix("file ").removeprefix("path ")
            err(f"params file {why}", where, "params files are paths relative to the project root")
            complete = False
            continue
        sources.append((rel, sha))
        parsed, problem = _parse(rel, text)
        if problem:
            err(f"params file '{rel}' {problem}", where, "fix the file, or remove it from `params_files`")
            complete = False
            continue
        if parsed is None:
            parsed = {}  # an empty file: no params
        if not isinstance(parsed, dict):
            err(f"params file '{rel}' holds {_what(parsed)}, not a mapping of names to values", where,
                "its top-level keys become params, e.g. train: {n_est: 50}")
            complete = False
            continue
        for name, value in parsed.items():
            if name in declared:
                err(f"param '{name}' is declared under `params:` and is also in params file '{rel}'", where,
                    "a param comes from one place: rename or remove one of them")
            elif name in origin:
                err(f"param '{name}' is in params files '{origin[name]}' and '{rel}'", where,
                    "a param comes from one place: rename or remove one of them")
            else:
                values[name] = value
                origin[name] = rel
    return values, tuple(sources), complete


def _parse(rel: str, text: str):
    """(data, None) or (None, what is wrong)."""
    if rel.lower().endswith(".json"):
        try:
            return json.loads(text), None
        except ValueError as e:
            return None, f"is not valid JSON: {e}"
    from ..errors import AmeliaError
    from ..loader import load_bytes

    try:
        return load_bytes(text.encode("utf-8"), rel).data, None
    except AmeliaError as e:
        at = f" at line {e.location.line}, column {e.location.col}" if e.location and e.location.line else ""
        return None, f"is not valid YAML{at}: {e.message.removeprefix('invalid YAML: ')}"


def _what(value) -> str:
    return ("a list" if isinstance(value, list) else "a string" if isinstance(value, str)
            else "a boolean" if isinstance(value, bool) else "an integer" if isinstance(value, int)
            else "a number" if isinstance(value, float) else "null" if value is None else "a value")


def kind_of_value(value) -> str:
    """How a message names a value's type."""
    return {dict: "an object", list: "a list"}.get(type(value)) or _what(value)


def lookup(params: dict, parts: list):
    """(value, None) at a dotted path below `params`, or (None, (message, hint))."""
    if parts[0] not in params:
        return None, None  # the caller says "undefined param"
    value = params[parts[0]]
    for i, key in enumerate(parts[1:], 1):
        here = ".".join(parts[:i])
        if not isinstance(value, dict):
            return None, (f"'params.{'.'.join(parts)}' reads a field of param '{here}', "
                          f"which is {kind_of_value(value)}", f"use params.{here}")
        if key not in value:
            return None, (f"param '{here}' has no key '{key}'",
                          did_you_mean(key, [str(k) for k in value]) or
                          (f"its keys are: {', '.join(map(str, value))}" if value else f"'{here}' is empty"))
        value = value[key]
    return value, None


def set_leaf(params: dict, name: str, raw: str) -> None:
    """`-p a.b.c=raw`: the leaf below a param object, in the type of the value it replaces.
    Raises UsageError for a key that does not exist or a value of the wrong type."""
    parts = name.split(".")
    value, problem = lookup(params, parts[:-1])
    if problem:
        raise UsageError(f"cannot set '{name}' with -p: {problem[0]}", hint=problem[1])
    if not isinstance(value, dict):
        raise UsageError(f"cannot set '{name}' with -p: param '{'.'.join(parts[:-1])}' is "
                         f"{kind_of_value(value)}, not an object")
    leaf = parts[-1]
    if leaf not in value:
        raise UsageError(f"unknown param '{name}' given with -p",
                         hint=did_you_mean(leaf, [str(k) for k in value]) or
                         f"'{'.'.join(parts[:-1])}' has the keys: {', '.join(map(str, value))}")
    value[leaf] = coerce_like(name, value[leaf], raw)


def coerce_like(name: str, old, raw: str):
    """A `-p` text as a YAML scalar (or flow list/mapping), in the type of `old` where sensible:
    a string stays the text as given; a number takes any number; a boolean takes a boolean."""
    if isinstance(old, str):
        return raw
    new = _yaml_value(raw)
    if old is None:
        return new
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, (int, float)):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        if ok and isinstance(old, float):
            new = float(new)
    else:
        ok = isinstance(new, type(old))
    if not ok:
        raise UsageError(f"param '{name}' is {kind_of_value(old)}, got {raw!r}",
                         hint="lists and objects are given as YAML or JSON, e.g. -p tags='[a, b]'"
                         if isinstance(old, (list, dict)) else "")
    return new


def _yaml_value(raw: str):
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
