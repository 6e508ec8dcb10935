"""Dependencies between steps: `needs`, references to steps, output → input overlap;
then the graph, its cycles, and the order the steps run in.

`why` records, for each (step, dependency), the first link found and where it is
written, so that a cycle is explained the way the file says it.
"""

from __future__ import annotations

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


def data_needs(s, refs: list, shaped: dict, why: dict) -> set:
    """The steps whose outputs feed `s`: those it references, and those that write a
    file it reads."""
    deps = set()
    for ref, loc in refs:
        if ref.startswith("steps.") and ref.split(".")[1] != s.id:
            dep = ref.split(".")[1]
            deps.add(dep)
            why.setdefault((s.id, dep), (f"{s.id} uses ${{{{ {ref} }}}}", loc))
    for other in shaped.values():
        if other is s:
            continue
        for i, inp in enumerate(s.inputs):
            hit = next((o for o in other.outputs if paths.overlaps(inp, o)), None)
            if hit is not None:
                deps.add(other.id)
                how = f"{s.id} reads {hit}" if inp == hit else f"{s.id} reads {inp}, which matches {hit}"
                why.setdefault((s.id, other.id), (f"{how}, written by {other.id}",
                                                  s.doc.source.locate(s.input_paths[i])))
                break
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
