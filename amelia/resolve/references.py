"""`${{ ref }}` references in a document's templates: checked, located, rendered."""

from __future__ import annotations

import json

from .. import templates
from ..errors import did_you_mean
from ..loader import format_path
from .files import file_location
from .foreach import item_problem
from .params_files import lookup

# What a path may be built from: known before any step runs (a foreach item too).
PATH_REFS = ("params", "name", "item")


class References:
    """The references of one document, checked against its scope (params, env, steps)."""

    def __init__(self, doc, err, item=None, groups=None):
        self.doc = doc
        self.err = err  # err(message, path, hint, loc)
        self.bad = 0  # errors reported so far
        self.item = item  # the foreach item of the step being checked (foreach.Item), if any
        self.groups = {} if groups is None else groups  # foreach step id → its instance ids

    def bound(self, item) -> "References":
        """These references for one foreach instance: `${{ item… }}` names its item."""
        if item is None:
            return self
        return References(self.doc, self.err, item, self.groups)

    def check(self, text: str, path: tuple, allowed: tuple, step_ids=(), outputs_of=None,
              file: str | None = None, self_id: str | None = None) -> list:
        """The good references in a template as (ref, Location); each bad one is an error.

        `file`: the text is that file's (a prompt file), not the value at `path`;
        `self_id`: the step the text belongs to (it cannot read its own output).
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
            problem = self._problem(ref, allowed, step_ids, outputs_of, self_id)
            if problem:
                self._bad(problem[0], path, problem[1], loc)
                continue
            good.append((ref, loc))
        return good

    def _bad(self, message, path, hint, loc) -> None:
        self.bad += 1
        self.err(message, path, hint, loc)

    def _problem(self, ref: str, allowed: tuple, step_ids, outputs_of, self_id=None):
        """(message, hint) when `ref` may not be used here, else None."""
        parts = ref.split(".")
        root = parts[0]
        env_names = self.doc.env_names
        if root == "item":  # in any template of a foreach step; outside one, an error
            return item_problem(ref, self.item)
        if root not in allowed:
            if root == "context":
                return ("'${{ context }}' may only be used in the prompt of an agent step that retrieves",
                        "give the step `context: [{source: NAME, query: ...}]`, or its agent `sources:`")
            if root in templates.ROOTS:
                usable = [r for r in allowed if r != "item"] + (["item"] if self.item else [])
                return (f"'{ref}' cannot be used here",
                        f"here you may use: {', '.join(r + '.' if r not in ('name', 'item', 'context') else r for r in usable)}")
            return (f"unknown reference '{ref}'",
                    did_you_mean(root, templates.ROOTS) or "references start with params., steps., env. or name")
        if root == "params":
            return self.param_problem(ref, parts)
        elif root == "env":
            if len(parts) != 2 or parts[1] not in env_names:
                name = ".".join(parts[1:])
                return (f"env var '{name}' is not declared" if name else "'env' names no variable",
                        "list it under `env:` at the top of the file to let templates read it"
                        if name else "use env.NAME")
        elif root == "steps":
            sid, at = step_of(parts, self.doc.namespace, list(step_ids) + list(self.groups))
            if sid is not None and len(parts) > at and sid in self.groups:
                name = ".".join(parts[1:at])
                return (f"step '{name}' is a foreach: '{ref}' names no one output",
                        f"it writes one output per item; read its files by a glob in `inputs` "
                        f"(each instance is a dependency), or `needs: [{name}]` to wait for all")
            return _step_problem(ref, parts, step_ids, outputs_of, self_id, self.doc.namespace)
        elif root == "name" and len(parts) != 1:
            return f"unknown reference '{ref}'", "use ${{ name }}"
        elif root == "context" and len(parts) != 1:
            return f"unknown reference '{ref}'", "use ${{ context }}: the chunks the step's `context:` retrieved"
        return None

    def param_problem(self, ref: str, parts: list):
        """(message, hint) when `params.…` names no value: an unknown param, a key its
        object lacks, a field of a value that is no object; else None."""
        params = self.doc.params
        if len(parts) == 1:
            return "'params' names no param", "use params.NAME"
        if parts[1] not in params:
            if self.doc.params_unread:
                return None  # a params file that could not be read may hold it (reported already)
            return (f"undefined param '{parts[1]}' in '{ref}'",
                    did_you_mean(parts[1], list(params)) or
                    ("declare it under `params:` or add it to a params file" if self.doc.file_params
                     else "declare it under `params:`"))
        if len(parts) == 2 or parts[1] in self.doc.stand_ins:  # a stand-in has every field
            return None
        _, problem = lookup(params, parts[1:])
        return problem

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
        if parts[0] == "item":
            return self.item.value(ref)
        if parts[1] in self.doc.stand_ins and len(parts) > 2:
            return ""
        value, _ = lookup(self.doc.params, parts[1:])
        if isinstance(value, str):
            return value
        # A params file's object reaches a step as JSON with sorted keys: reordering the
        # file changes nothing. (A declared param keeps its order: its keys must not move.)
        return json.dumps(value, sort_keys=parts[1] in self.doc.file_params)


def step_of(parts: list, namespace: str, step_ids) -> tuple:
    """(the step's id in the pipeline, the index of the field in parts) of a `steps.…`
    reference written in a document with that namespace: `steps.review.critique.output`
    names step `review.critique` (the longest name that is a step wins); in a recipe
    included as `review`, `steps.critique.output` does. (None, 2) when none matches."""
    ids = step_ids if isinstance(step_ids, (set, frozenset, dict)) else set(step_ids)
    for at in range(len(parts) - 1, 1, -1):
        name = ".".join(parts[1:at])
        sid = f"{namespace}.{name}" if namespace else name
        if sid in ids:
            return sid, at
    return None, 2


def _step_problem(ref: str, parts: list, step_ids, outputs_of, self_id=None, namespace=""):
    if len(parts) < 3:
        return f"'{ref}' names no field", "use steps.ID.output or steps.ID.json.FIELD"
    sid, at = step_of(parts, namespace, step_ids)
    if sid is None:
        sid, at = parts[1], 2
        local = list(step_ids) if not namespace else [i[len(namespace) + 1:] for i in step_ids
                                                       if i.startswith(namespace + ".")]
        return (f"unknown step '{sid}' in '{ref}'",
                did_you_mean(sid, local) or f"steps are: {', '.join(local)}")
    field = parts[at] if len(parts) > at else ""
    if sid == self_id:
        # Its output does not exist before it runs (or is the last run's, which is stale).
        return (f"step '{'.'.join(parts[1:at])}' reads its own output through '{ref}'",
                "a step cannot read what it is about to write; to name the file it writes, "
                "write the path itself")
    if field not in ("output", "json") or (field == "output" and len(parts) > at + 1) or (
            field == "json" and len(parts) < at + 2):
        return (f"'{ref}' is not a step field",
                did_you_mean(field, ("output", "json")) or "use steps.ID.output or steps.ID.json.FIELD")
    if sid in outputs_of and (len(outputs_of[sid]) != 1 or outputs_of[sid][0].endswith("/")):
        n = len(outputs_of[sid])
        return (f"step '{sid}' has no single output file for '{ref}'",
                f"give step '{sid}' an `output:` file" if n == 0 else
                f"step '{sid}' writes {n} outputs; a reference needs one `output:` file"
                if n > 1 else f"step '{sid}' writes a directory; a reference needs one `output:` file")
    return None
