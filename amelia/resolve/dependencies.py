"""Dependencies between steps: `needs`, references to steps, output → input overlap;
then the graph, its cycles, and the order the steps run in.

`why` records, for each (step, dependency), the first link found and where it is
written, so that a cycle is explained the way the file says it.
"""

from __future__ import annotations

import bisect

from .. import graph, paths
from ..errors import did_you_mean


def declared_needs(s, step_ids: list, err, why: dict) -> set:
    """The steps `needs:` names (ordering only); unknown ones and itself are errors."""
    needs = set()
    data = s.data
    for i, dep in enumerate(s.needs):
        p = s.base + (("needs", i) if isinstance(data.get("needs"), list) else ("needs",))
        if dep == s.id:
            err(f"step '{s.id}' needs itself", p, "remove it from `needs`")
        elif dep not in step_ids:
            err(f"step '{s.id}' needs unknown step '{dep}'", p,
                did_you_mean(dep, step_ids) or f"steps are: {', '.join(step_ids)}")
        else:
            needs.add(dep)
            why.setdefault((s.id, dep), (f"{s.id} needs {dep}", s.doc.source.locate(p)))
    return needs


class OutputIndex:
    """Every step's outputs, indexed so that finding who writes what an input names costs
    a few look-ups, not a pass over all outputs (a 2,000-step file would take 4 million)."""

    def __init__(self, shaped: dict):
        self.owners: dict = {}  # output, without a trailing "/" → [(position, Shaped, output)]
        self.all: list = []  # (position, Shaped, output), in file order, for globs
        for s in shaped.values():
            for o in s.outputs:
                entry = (len(self.all), s, o)
                self.all.append(entry)
                self.owners.setdefault(o.rstrip("/"), []).append(entry)
        self.sorted = sorted(self.owners)  # for "everything below this directory"

    def writers(self, pattern: str) -> list:
        """(position, Shaped, output) of every output the input pattern may read."""
        if paths.is_glob(pattern):
            return [e for e in self.all if paths.overlaps(pattern, e[2])]
        p = pattern.rstrip("/")
        found = list(self.owners.get(p, ()))
        parts = p.split("/")
        for i in range(1, len(parts)):  # a directory output that holds it
            found += [e for e in self.owners.get("/".join(parts[:i]), ()) if e[2].endswith("/")]
        lo = bisect.bisect_left(self.sorted, p + "/")
        for name in self.sorted[lo:]:  # outputs inside the directory it names
            if not name.startswith(p + "/"):
                break
            found += self.owners[name]
        return [e for e in found if paths.overlaps(pattern, e[2])]


def data_needs(s, refs: list, index: OutputIndex, why: dict) -> set:
    """The steps whose outputs feed `s`: those it references, and those that write a
    file it reads. The link recorded for each is its first input that another step
    writes, and the first of that step's outputs it reads."""
    deps = set()
    for ref, loc in refs:
        if ref.startswith("steps.") and ref.split(".")[1] != s.id:
            dep = ref.split(".")[1]
            deps.add(dep)
            why.setdefault((s.id, dep), (f"{s.id} uses ${{{{ {ref} }}}}", loc))
    first: dict = {}  # writer step id → (input index, output position, Shaped, output, input)
    for i, inp in enumerate(s.inputs):
        for pos, other, o in index.writers(inp):
            if other is not s and (other.id not in first or (i, pos) < first[other.id][:2]):
                first[other.id] = (i, pos, other, o, inp)
    for dep, (i, _pos, other, hit, inp) in first.items():
        deps.add(dep)
        how = f"{s.id} reads {hit}" if inp == hit else f"{s.id} reads {inp}, which matches {hit}"
        why.setdefault((s.id, dep), (f"{how}, written by {dep}", s.doc.source.locate(s.input_paths[i])))
    return deps


def order(shaped: dict, edges: dict, why: dict, problems) -> list:
    """The steps in a topological order (file order where free); each cycle is an error.

    Raises every error found so far (these and earlier ones) before ordering.
    """
    file_order = list(shaped)
    g = graph.build(file_order, edges)
    position = {sid: i for i, sid in enumerate(file_order)}
    for cycle in graph.find_cycles(g):
        # The graph's edges run from a dependency to its dependent; say it the way
        # the file does ("a needs b"), starting at the step that comes first.
        ring = list(reversed(cycle[:-1]))
        start = min(range(len(ring)), key=lambda i: position[ring[i]])
        ring = ring[start:] + ring[:start]
        links = [why[(ring[i], ring[(i + 1) % len(ring)])] for i in range(len(ring))]
        first = shaped[ring[0]]
        problems.reporter(first.doc)(
            f"dependency cycle: {' -> '.join(ring + ring[:1])}", first.base,
            "; ".join(how for how, _ in links) +
            ". A step cannot depend on itself through others: remove one of these links",
            links[0][1])
    problems.raise_all()
    return graph.topological_order(g, file_order)
