"""The step DAG (networkx): cycles, a stable topological order, and renderings.

Used when a pipeline is resolved and by `amelia graph`; the resolved pipeline keeps
the order and the edges as plain data, so planning never imports networkx.
`stable_order` orders a graph without networkx (linear, no graph object): networkx is
built only when there is a cycle to explain.
"""

from __future__ import annotations

import heapq


def stable_order(order: list[str], edges: dict[str, set[str]]) -> list[str] | None:
    """Dependencies first; among free steps, the order of the file (the same order as
    `topological_order`); None when there is a cycle. edges: step -> the steps it needs.
    Kahn's algorithm with a heap keyed by file position: O(E + N log N)."""
    position = {s: i for i, s in enumerate(order)}
    waiting = dict.fromkeys(order, 0)  # dependencies not yet placed
    dependents: dict = {}
    for step, needs in edges.items():
        for dep in needs:
            if dep in position and step in position:  # a step that did not resolve is no node
                waiting[step] += 1
                dependents.setdefault(dep, []).append(step)
    ready = [position[s] for s in order if not waiting[s]]
    heapq.heapify(ready)
    out = []
    while ready:
        step = order[heapq.heappop(ready)]
        out.append(step)
        for nxt in dependents.get(step, ()):
            waiting[nxt] -= 1
            if not waiting[nxt]:
                heapq.heappush(ready, position[nxt])
    return out if len(out) == len(order) else None


def build(order: list[str], edges: dict[str, set[str]]):
    """edges: step -> the steps it needs."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(order)
    for step, needs in edges.items():
        for dep in needs:
            g.add_edge(dep, step)
    return g


def find_cycle(g) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    import networkx as nx

    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    path = [u for u, _ in cycle]
    return path + [path[0]]


def find_cycles(g) -> list[list[str]]:
    """One cycle per knot of the graph (strongly connected component), each as
    [a, b, ..., a] along the edges, knots in the order of their first node in `g`."""
    import networkx as nx

    position = {n: i for i, n in enumerate(g.nodes)}
    out = []
    knots = [c for c in nx.strongly_connected_components(g)
             if len(c) > 1 or any(g.has_edge(n, n) for n in c)]
    for knot in sorted(knots, key=lambda c: min(position[n] for n in c)):
        first = min(knot, key=position.__getitem__)
        cycle = nx.find_cycle(g.subgraph(knot), source=first)
        path = [u for u, _ in cycle]
        out.append(path + [path[0]])
    return out


def topological_order(g, file_order: list[str]) -> list[str]:
    """Dependencies first; among free steps, the order of the file."""
    import networkx as nx

    index = {s: i for i, s in enumerate(file_order)}
    return list(nx.lexicographical_topological_sort(g, key=lambda s: index[s]))


def render(pipeline, fmt: str = "text") -> str:
    steps = pipeline.steps
    if fmt == "mermaid":
        lines = ["flowchart TD"]
        ids = {s.id: f"s{i}" for i, s in enumerate(steps)}
        for s in steps:
            lines.append(f'  {ids[s.id]}["{_mermaid(s.id)} ({s.kind})"]')
        for s in steps:
            for dep in s.needs:
                arrow = "-->" if dep in s.data_needs else "-.->"
                lines.append(f"  {ids[dep]} {arrow} {ids[s.id]}")
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = [f'digraph "{pipeline.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
        for s in steps:
            lines.append(f'  "{_dot(s.id)}" [label="{_dot(s.id)}\\n({s.kind})"];')
        for s in steps:
            for dep in s.needs:
                style = "" if dep in s.data_needs else " [style=dashed]"
                lines.append(f'  "{_dot(dep)}" -> "{_dot(s.id)}"{style};')
        lines.append("}")
        return "\n".join(lines) + "\n"
    # text: each step with what it needs, in run order
    width = max(len(s.id) for s in steps)
    lines = []
    for s in steps:
        needs = ", ".join(s.needs) if s.needs else "-"
        lines.append(f"{s.id:<{width}}  {s.kind:<5}  needs: {needs}")
    return "\n".join(lines) + "\n"


# A foreach instance's id holds its item (`compile[a "b"]`): quoted for each format.
def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")
