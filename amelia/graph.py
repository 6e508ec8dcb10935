"""The step DAG (networkx): cycles, a stable topological order, and renderings.

Used when a pipeline is resolved and by `amelia graph`; the resolved pipeline keeps
the order and the edges as plain data, so planning never imports networkx.
"""

from __future__ import annotations


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
            lines.append(f'  {ids[s.id]}["{s.id} ({s.kind})"]')
        for s in steps:
            for dep in s.needs:
                arrow = "-->" if dep in s.data_needs else "-.->"
                lines.append(f"  {ids[dep]} {arrow} {ids[s.id]}")
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = [f'digraph "{pipeline.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
        for s in steps:
            lines.append(f'  "{s.id}" [label="{s.id}\\n({s.kind})"];')
        for s in steps:
            for dep in s.needs:
                style = "" if dep in s.data_needs else " [style=dashed]"
                lines.append(f'  "{dep}" -> "{s.id}"{style};')
        lines.append("}")
        return "\n".join(lines) + "\n"
    # text: each step with what it needs, in run order
    width = max(len(s.id) for s in steps)
    lines = []
    for s in steps:
        needs = ", ".join(s.needs) if s.needs else "-"
        lines.append(f"{s.id:<{width}}  {s.kind:<5}  needs: {needs}")
    return "\n".join(lines) + "\n"
