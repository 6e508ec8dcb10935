"""`${{ ref }}` references in a document's templates: checked, located, rendered."""

from __future__ import annotations

import json

from .. import templates
from ..errors import did_you_mean
from ..loader import format_path
from .files import file_location

PATH_REFS = ("params", "name")  # what a path may be built from: known before any step runs


class References:
    """The references of one document, checked against its scope (params, env, steps)."""

    def __init__(self, doc, err):
        self.doc = doc
        self.err = err  # err(message, path, hint, loc)
        self.bad = 0  # errors reported so far

    def check(self, text: str, path: tuple, allowed: tuple, step_ids=(), outputs_of=None,
              file: str | None = None) -> list:
        """The good references in a template as (ref, Location); each bad one is an error.

        `file`: the text is that file's (a prompt file), not the value at `path`.
        """
        outputs_of = outputs_of or {}
        source = self.doc.source

        def where(offset, needle):
            if file:
                return file_location(file, text, offset, format_path(path))
            return source.locate_within(path, text, offset, needle)

        found, syntax = templates.scan(text)
        for e in syntax:
            self._bad(str(e), path, e.hint, where(e.offset, e.source))
        good = []
        for ref, offset, written in found:
            loc = where(offset, written)
            problem = self._problem(ref, allowed, step_ids, outputs_of)
            if problem:
                self._bad(problem[0], path, problem[1], loc)
                continue
            good.append((ref, loc))
        return good

    def _bad(self, message, path, hint, loc) -> None:
        self.bad += 1
        self.err(message, path, hint, loc)

    def _problem(self, ref: str, allowed: tuple, step_ids, outputs_of):
        """(message, hint) when `ref` may not be used here, else None."""
        parts = ref.split(".")
        root = parts[0]
        params, env_names = self.doc.params, self.doc.env_names
        if root not in allowed:
            if root in templates.ROOTS:
                return (f"'{ref}' cannot be used here",
                        f"here you may use: {', '.join(r + '.' if r != 'name' else r for r in allowed)}")
            return (f"unknown reference '{ref}'",
                    did_you_mean(root, templates.ROOTS) or "references start with params., steps., env. or name")
        if root == "params":
            if len(parts) != 2 or parts[1] not in params:
                if len(parts) == 1:
                    return "'params' names no param", "use params.NAME"
                if len(parts) > 2 and parts[1] in params:
                    return f"'{ref}' reads a field of a param", f"use params.{parts[1]}"
                return (f"undefined param '{parts[1]}' in '{ref}'",
                        did_you_mean(parts[1], list(params)) or "declare it under `params:`")
        elif root == "env":
            if len(parts) != 2 or parts[1] not in env_names:
                name = ".".join(parts[1:])
                return (f"env var '{name}' is not declared" if name else "'env' names no variable",
                        "list it under `env:` at the top of the file to let templates read it"
                        if name else "use env.NAME")
        elif root == "steps":
            return _step_problem(ref, parts, step_ids, outputs_of)
        elif root == "name" and len(parts) != 1:
            return f"unknown reference '{ref}'", "use ${{ name }}"
        return None

    def render_path(self, text: str, path: tuple):
        """A path with its `${{ params.X }}`/`${{ name }}` filled in; None after an error."""
        if "${{" not in text:
            return text
        before = self.bad
        self.check(text, path, PATH_REFS)
        if self.bad > before:
            return None
        return templates.substitute(text, self.static_value)

    def static_value(self, ref: str) -> str:
        """The text of a reference known before any step runs (a param, the name)."""
        parts = ref.split(".")
        if parts[0] == "name":
            return str(self.doc.data.get("name", ""))
        value = self.doc.params[parts[1]]
        return value if isinstance(value, str) else json.dumps(value)


def _step_problem(ref: str, parts: list, step_ids, outputs_of):
    if len(parts) < 3:
        return f"'{ref}' names no field", "use steps.ID.output or steps.ID.json.FIELD"
    sid, field = parts[1], parts[2]
    if sid not in step_ids:
        return (f"unknown step '{sid}' in '{ref}'",
                did_you_mean(sid, step_ids) or f"steps are: {', '.join(step_ids)}")
    if field not in ("output", "json") or (field == "output" and len(parts) > 3) or (
            field == "json" and len(parts) < 4):
        return (f"'{ref}' is not a step field",
                did_you_mean(field, ("output", "json")) or "use steps.ID.output or steps.ID.json.FIELD")
    if sid in outputs_of and (len(outputs_of[sid]) != 1 or outputs_of[sid][0].endswith("/")):
        n = len(outputs_of[sid])
        return (f"step '{sid}' has no single output file for '{ref}'",
                f"give step '{sid}' an `output:` file" if n == 0 else
                f"step '{sid}' writes {n} outputs; a reference needs one `output:` file"
                if n > 1 else f"step '{sid}' writes a directory; a reference needs one `output:` file")
    return None
