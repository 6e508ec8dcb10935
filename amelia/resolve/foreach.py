"""`foreach:`: one step per item, each a step of its own with the id NAME[KEY].

The items come from a list (`[ada, grace]`), a list param (`"${{ params.targets }}"`),
or the files a glob matches (`{glob: "src/*.c"}`, sorted, confined like inputs). Each
instance reads its item through `${{ item }}` (a list's item) or `${{ item.path }}`,
`item.name`, `item.stem`, `item.dir` (a file's); the values are the instance's static
vars, so each has a key of its own and a new item runs only its own instance. A glob is
expanded when the pipeline is resolved: its listing's digest is one of the resolution's
sources (listing.py), so adding or deleting a file redoes the resolution.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .. import listing, paths, templates
from .params_files import kind_of_value, lookup

FILE_FIELDS = ("path", "name", "stem", "dir")


@dataclass(frozen=True)
class Item:
    key: str  # in the instance's id, NAME[KEY]
    values: tuple  # (ref, text) of what the item offers: ("item", …) or ("item.path", …), …
    of_file: bool = False

    def value(self, ref: str):
        return dict(self.values).get(ref)


def instance_id(step_id: str, key: str) -> str:
    return f"{step_id}[{key}]"


def group_of(step_id: str) -> str:
    """The foreach step an instance id belongs to (a step id holds no '[' of its own)."""
    return step_id.split("[", 1)[0]


def expand(data: dict, base: tuple, root: str, refs, err) -> tuple:
    """(items or None when the step has no foreach, sources) of one step.

    refs: its document's References (a template names a list param; a glob may use
    params); errors at base + ("foreach", …) through err."""
    spec = data.get("foreach")
    if spec is None:
        return None, ()
    where = base + ("foreach",)
    if isinstance(spec, list):
        return _list_items(spec, where, err, from_param=None), ()
    if isinstance(spec, str):
        return _param_items(spec, where, refs, err), ()
    return _glob_items(spec["glob"], where + ("glob",), root, refs, err)


def _scalar_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _list_items(values: list, where: tuple, err, from_param: str | None) -> list:
    items, seen = [], {}
    for i, value in enumerate(values):
        at = where if from_param else where + (i,)
        if isinstance(value, dict) and "glob" in value:
            err("foreach has both a list and a glob", at,
                "foreach takes a list or {glob: PATTERN}, not both: make the glob match every file "
                "you need, or use two steps")
            continue
        if value is None or isinstance(value, (dict, list)):
            what = f"item {i} of param '{from_param}'" if from_param else f"item {i}"
            err(f"foreach {what} is {kind_of_value(value)}; items are strings, numbers or booleans", at,
                "write each item as a plain value, e.g. foreach: [ada, grace]")
            continue
        key = _scalar_text(value)
        if key in seen:
            err(f"foreach item '{key}' is listed twice", at,
                f"each item makes a step of its own (id [{key}]): remove one of them")
            continue
        seen[key] = i
        items.append(Item(key, (("item", key),)))
    return items


def _param_items(text: str, where: tuple, refs, err) -> list:
    before = refs.bad
    found = refs.check(text, where, ("params",))
    if refs.bad > before:
        return []
    if len(found) != 1:
        err("foreach names one list param, e.g. \"${{ params.targets }}\"", where,
            "or give the list itself ([ada, grace]) or {glob: PATTERN}")
        return []
    ref = found[0][0]
    parts = ref.split(".")
    if parts[1] in refs.doc.stand_ins or parts[1] not in refs.doc.params:
        return []  # only checking (a stand-in has no items), or a params file was unreadable
    value, _ = lookup(refs.doc.params, parts[1:])
    if not isinstance(value, list):
        err(f"foreach '{ref}' is {kind_of_value(value)}, not a list", where,
            "foreach over a param needs a list, e.g. targets: [ada, grace]")
        return []
    return _list_items(value, where, err, from_param=".".join(parts[1:]))


def _glob_items(pattern: str, where: tuple, root: str, refs, err) -> tuple:
    rendered = refs.render_path(pattern, where)
    if rendered is None:
        return [], ()
    hint = "a foreach glob names files below the project root, e.g. {glob: \"src/*.c\"}"
    problem = paths.lexical_problem(rendered) or paths.glob_problem(paths.normalize(rendered))
    if problem:
        err(f"foreach glob '{rendered}' {problem}", where, hint)
        return [], ()
    norm = paths.normalize(rendered)
    if not norm:
        err("foreach glob names the project root itself", where, hint)
        return [], ()
    try:
        found = listing.matched(root, norm)
    except ValueError as e:
        err(f"foreach glob '{norm}': {e}", where, hint)
        return [], ()
    stems: dict = {}
    for rel in found:
        stems.setdefault(_stem(rel), []).append(rel)
    items = []
    for rel in found:
        # The stem names the instance; files that share one are named by their path.
        key = _stem(rel) if len(stems[_stem(rel)]) == 1 else rel
        values = (("item.path", rel), ("item.name", os.path.basename(rel)), ("item.stem", _stem(rel)),
                  ("item.dir", os.path.dirname(rel) or "."))
        items.append(Item(key, values, of_file=True))
    return items, ((listing.PREFIX + norm, listing.listing_digest(found)),)


def _stem(rel: str) -> str:
    return os.path.splitext(os.path.basename(rel))[0]


def item_problem(ref: str, item):
    """(message, hint) when an `item…` reference names nothing for this item, else None."""
    parts = ref.split(".")
    if item is None:
        return (f"'{ref}' is used outside foreach",
                "${{ item }} names the item of a step with `foreach:`; this step has none")
    if item.of_file:
        if len(parts) == 2 and parts[1] in FILE_FIELDS:
            return None
        return (f"'{ref}' is not a field of a file item",
                "a {glob: …} item has item.path, item.name, item.stem and item.dir")
    if len(parts) == 1:
        return None
    return (f"'{ref}' reads a field of a list item", "use ${{ item }}: a list's item is a plain value")


def fixed_outputs(data: dict, base: tuple, n: int, err) -> bool:
    """False (an error reported) when a foreach step of n > 1 items writes an output whose
    path does not use the item: every instance would write the same file."""
    if n < 2:
        return True
    raw = [("output", data["output"])] if "output" in data else list(enumerate(data.get("outputs") or []))
    for key, text in raw:
        refs, _ = templates.scan(text)
        if not any(ref.split(".")[0] == "item" for ref, _, _ in refs):
            where = base + (("output",) if key == "output" else ("outputs", key))
            err(f"every instance of this foreach step would write '{text}'", where,
                "put the item in the path, e.g. build/${{ item.stem }}.o or out/${{ item }}.txt")
            return False
    return True
