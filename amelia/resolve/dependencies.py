"""Dependencies between steps: `needs`, references to steps, output → input overlap;
then the graph, its cycles, and the order the steps run in.

`why` records, for each (step, dependency), the first link found and where it is
written, so that a cycle is explained the way the file says it.
"""

from __future__ import annotations

import bisect

from .. import graph, paths
from ..errors import did_you_mean


def declared_needs(s, step_ids: list, err, why: dict, groups: dict | None = None, names=None) -> set:
    """The steps `needs:` names (ordering only); unknown ones and itself are errors.

    groups: foreach step id → its instance ids (needing it needs every instance; one
    without instances is no step to wait for); names: the step ids as written, for hints."""
    needs = set()
    data = s.data
    groups = groups or {}
    names = step_ids if names is None else names
    me = s.doc.step_id(s.local)  # an instance's foreach step
    for i, written in enumerate(s.needs):
        p = s.base + (("needs", i) if isinstance(data.get("needs"), list) else ("needs",))
        dep = s.doc.step_id(written)  # in a recipe, its own steps: `critique` is review.critique
        if dep == s.id or dep == me:
            err(f"step '{me}' needs itself", p, "remove it from `needs`")
        elif dep in groups:
            for inst in groups[dep]:
                needs.add(inst)
                if (s.id, inst) not in why:  # located only if a cycle is reported
                    why[(s.id, inst)] = (f"{s.id} needs {dep}", _later(s.doc.source, p))
        elif dep not in step_ids:
            local = [n[len(s.doc.namespace) + 1:] for n in names if n.startswith(s.doc.namespace + ".")] \
                if s.doc.namespace else names
            err(f"step '{s.local}' needs unknown step '{written}'", p,
                did_you_mean(written, local) or f"steps are: {', '.join(local)}")
        else:
            needs.add(dep)
            if (s.id, dep) not in why:  # located only if a cycle is reported
                why[(s.id, dep)] = (f"{s.id} needs {dep}", _later(s.doc.source, p))
    return needs


class OutputIndex:
    """Every step's outputs, indexed so that finding who writes what an input names costs
    a few look-ups, not a pass over all outputs (a 2,000-step file would take 4 million).

    Outputs are indexed by their real name (`Shaped.real_outputs`, symlinks resolved) when
    the steps have one, and looked up with the real form of the input."""

    def __init__(self, shaped: dict):
        self.owners: dict = {}  # real output without a trailing "/" → [(position, Shaped, output, real)]
        n = 0
        for s in shaped.values():
            reals = getattr(s, "real_outputs", None) or s.outputs
            for o, r in zip(s.outputs, reals):
                self.owners.setdefault(r.rstrip("/"), []).append((n, s, o, r))
                n += 1
        self.sorted = sorted(self.owners)  # for "everything below this directory"

    def writers(self, pattern: str) -> list:
        """(position, Shaped, output) of every output the input pattern (its real form) may
        read, in no set order. A glob is looked up by the text before its first wildcard:
        what it matches starts so, or lies below a directory output above that text."""
        glob = paths.is_glob(pattern)
        p = paths.literal_text(pattern) if glob else pattern.rstrip("/")
        found = [] if glob else list(self.owners.get(p, ()))
        i = p.find("/")
        while i != -1:  # a directory output that holds it
            found += [e for e in self.owners.get(p[:i], ()) if e[2].endswith("/")]
            i = p.find("/", i + 1)
        below = p if glob else p + "/"  # outputs it names (a glob), or inside the directory it names
        for i in range(bisect.bisect_left(self.sorted, below), len(self.sorted)):
            name = self.sorted[i]
            if not name.startswith(below):
                break
            found += self.owners[name]
        return [e[:3] for e in found if paths.overlaps(pattern, e[3])]


def _later(source, path):
    """Where a link is written, found when it is asked for (a cycle): most never are."""
    return lambda: source.locate(path)


def data_needs(s, refs: list, index: OutputIndex, why: dict, step_of=None) -> set:
    """The steps whose outputs feed `s`: those it references, and those that write a
    file it reads. The link recorded for each is its first input that another step
    writes, and the first of that step's outputs it reads. step_of(ref): the step id a
    `steps.…` reference names (recipes' ids hold dots), default its second part."""
    deps = set()
    for ref, loc in refs:
        if not ref.startswith("steps."):
            continue
        dep = step_of(ref) if step_of is not None else ref.split(".")[1]
        if dep is not None and dep != s.id:
            deps.add(dep)
            why.setdefault((s.id, dep), (f"{s.id} uses ${{{{ {ref} }}}}", loc))
    first: dict = {}  # writer step id → (input index, output position, Shaped, output, input)
    reals = getattr(s, "real_inputs", None) or s.inputs
    for i, (inp, real) in enumerate(zip(s.inputs, reals)):
        for pos, other, o in index.writers(real):
            if other is not s and (other.id not in first or (i, pos) < first[other.id][:2]):
                first[other.id] = (i, pos, other, o, inp)
    for dep, (i, _pos, other, hit, inp) in first.items():
        deps.add(dep)
        if (s.id, dep) not in why:
            how = f"{s.id} reads {hit}" if inp == hit else f"{s.id} reads {inp}, which matches {hit}"
            why[(s.id, dep)] = (f"{how}, written by {dep}", _later(s.doc.source, s.input_paths[i]))
    return deps


def order(shaped: dict, edges: dict, why: dict, problems) -> list:
    """The steps in a topological order (file order where free); each cycle is an error.

    Raises every error found so far (these and earlier ones) before ordering.
    """
    file_order = list(shaped)
    ordered = graph.stable_order(file_order, edges)
    if ordered is not None:  # no cycle: networkx is not needed
        problems.raise_all()
        return ordered
    g = graph.build(file_order, edges)
    position = {sid: i for i, sid in enumerate(file_order)}
    for cycle in graph.find_cycles(g):
        # The graph's edges run from a dependency to its dependent; say it the way
        # the file does ("a needs b"), starting at the step that comes first.
        ring = list(reversed(cycle[:-1]))
        start = min(range(len(ring)), key=lambda i: position[ring[i]])
        ring = ring[start:] + ring[:start]
        links = [why[(ring[i], ring[(i + 1) % len(ring)])] for i in range(len(ring))]
        links = [(how, loc() if callable(loc) else loc) for how, loc in links]
        first = shaped[ring[0]]
        problems.reporter(first.doc)(
            f"dependency cycle: {' -> '.join(ring + ring[:1])}", first.base,
            "; ".join(how for how, _ in links) +
            ". A step cannot depend on itself through others: remove one of these links",
            links[0][1])
    problems.raise_all()
    return graph.topological_order(g, file_order)
