"""A step's shape: its kind, what it needs, the paths it reads and writes, checked.

Also the check across steps that each file is written by one step only.
"""

from __future__ import annotations

import bisect

from dataclasses import dataclass, field

from .. import features, paths
from ..steps import kind_of


@dataclass
class Shaped:
    """One usable step: its kind and normalised paths, and where each was written."""

    id: str  # in the pipeline (namespaced in an included document)
    local: str  # in its document
    doc: object  # Document
    kind: str
    needs: list  # step ids as written
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    input_paths: list = field(default_factory=list)  # key path of each input
    output_paths: list = field(default_factory=list)
    path_errors: bool = False  # an output did not resolve (reported already)

    @property
    def data(self) -> dict:
        return self.doc.steps()[self.local]

    @property
    def base(self) -> tuple:
        return ("steps", self.local)


def shape(doc, local: str, root: str, refs, err) -> Shaped | None:
    """Kind, needs, inputs and outputs of one step, checked; None if unusable.

    refs: the document's References (paths may use params and the name); err reports.
    """
    data = doc.steps()[local]
    base = ("steps", local)
    kinds = kind_of(data)
    if not kinds:
        err(f"step '{local}' does nothing", base,
            "give it `run:` (a command) or `agent:` with `prompt:` (an LLM call)")
        return None
    if len(kinds) > 1:
        err(f"step '{local}' does more than one thing: {' and '.join(kinds)}", base + (kinds[1],),
            "a step does exactly one thing; split it into two steps")
        return None
    kind = kinds[0]
    unavailable = features.kind_key(kind)
    if unavailable:
        err(unavailable.message(), base + (kind,), unavailable.hint)
        return None
    if "output" in data and "outputs" in data:
        err(f"step '{local}' has both `output` and `outputs`", base + ("outputs",),
            "use `output` for one file or `outputs` for several")
    needs = data.get("needs") or []
    needs = [needs] if isinstance(needs, str) else list(needs)
    raw_inputs = data.get("inputs") or []
    raw_inputs = [raw_inputs] if isinstance(raw_inputs, str) else list(raw_inputs)
    raw_outputs = [data["output"]] if "output" in data else list(data.get("outputs") or [])
    s = Shaped(doc.step_id(local), local, doc, kind, needs)
    for name, raw, into, where in (("inputs", raw_inputs, s.inputs, s.input_paths),
                                   ("outputs", raw_outputs, s.outputs, s.output_paths)):
        single = name == "outputs" and "output" in data
        for i, text in enumerate(raw):
            p = base + (("output",) if single else (name, i) if isinstance(data.get(name), list) else (name,))
            norm = _path(text, p, name == "outputs", root, refs, err)
            if norm is not None:
                into.append(norm)
                where.append(p)
    s.path_errors = len(s.outputs) != len(raw_outputs)
    return s


def _path(text: str, p: tuple, output: bool, root: str, refs, err) -> str | None:
    rendered = refs.render_path(text, p)
    if rendered is None:
        return None
    problem = paths.confinement_problem(rendered, root)
    if problem:
        err(f"path '{rendered}' {problem}", p, "paths are relative to the project root and stay inside it")
        return None
    norm = paths.normalize(rendered)
    if not norm:
        err("path names the project root itself", p, "name a file or a directory below it")
        return None
    if output and paths.is_glob(norm):
        err(f"output '{norm}' is a glob", p, "outputs name files or directories (ending in /)")
        return None
    if output and norm.split("/")[0] in paths.SKIP_DIRS:
        err(f"output '{norm}' is inside {norm.split('/')[0]}/", p,
            "amelia's store and git's own files are not outputs")
        return None
    return norm


def check_output_clashes(shaped: dict, problems) -> None:
    """Each file is written by one step: no equal outputs, none inside another's directory.

    Each output is checked against the outputs before it through an index (its name, the
    directories above it, the names below it), and the clash reported is with the first
    of them in file order."""
    owner: dict = {}  # output without "/" → [(position, Shaped, output, key path)]
    names: list = []  # sorted keys of owner
    position = 0
    for s in shaped.values():
        err = problems.reporter(s.doc)
        for o, p in zip(s.outputs, s.output_paths):
            mine = o.rstrip("/")
            found = list(owner.get(mine, ()))
            parts = mine.split("/")
            for i in range(1, len(parts)):
                found += [e for e in owner.get("/".join(parts[:i]), ()) if e[2].endswith("/")]
            if o.endswith("/"):
                lo = bisect.bisect_left(names, mine + "/")
                for name in names[lo:]:
                    if not name.startswith(mine + "/"):
                        break
                    found += owner[name]
            if found:
                _, other, other_out, other_p = min(found, key=lambda e: e[0])
                who = "the same step" if other is s else f"step '{other.id}'"
                line = other.doc.source.locate(other_p).line
                if mine == other_out.rstrip("/"):
                    err(f"output '{o}' is also written by {who}", p,
                        f"each file is written by one step only (see line {line})")
                elif other_out.endswith("/"):
                    err(f"output '{o}' is inside '{other_out}', an output directory of {who}", p,
                        f"a directory output owns everything below it (see line {line})")
                else:
                    err(f"output directory '{o}' contains '{other_out}', an output of {who}", p,
                        f"a directory output owns everything below it (see line {line})")
            if mine not in owner:
                bisect.insort(names, mine)
            owner.setdefault(mine, []).append((position, s, o, p))
            position += 1
