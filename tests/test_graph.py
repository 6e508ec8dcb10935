"""graph: the DAG, its cycles, a stable order, and the text/mermaid/dot renderings."""

from __future__ import annotations

import shutil

import pytest

from amelia import api, graph
from conftest import CASES, assert_golden

SMALL = CASES / "graph_small"


def g_of(edges: dict, order=None):
    order = order or list(edges)
    return graph.build(order, {k: set(v) for k, v in edges.items()})


def test_build_edges_run_from_dependency_to_dependent():
    g = g_of({"a": [], "b": ["a"], "c": ["a", "b"]})
    assert sorted(g.edges) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(g.nodes) == ["a", "b", "c"]


def test_find_cycle_none():
    assert graph.find_cycle(g_of({"a": [], "b": ["a"]})) is None
    assert graph.find_cycles(g_of({"a": [], "b": ["a"]})) == []


def test_find_cycle_closes_the_loop():
    cycle = graph.find_cycle(g_of({"a": ["c"], "b": ["a"], "c": ["b"], "d": []}))
    assert cycle[0] == cycle[-1]
    assert len(cycle) == 4
    assert set(cycle) == {"a", "b", "c"}
    g = g_of({"a": ["c"], "b": ["a"], "c": ["b"]})
    for u, v in zip(cycle, cycle[1:]):
        assert g.has_edge(u, v)


def test_find_cycle_self_loop():
    assert graph.find_cycle(g_of({"a": ["a"]})) == ["a", "a"]
    assert graph.find_cycles(g_of({"a": ["a"], "b": []})) == [["a", "a"]]


def test_find_cycles_one_per_knot_in_file_order():
    g = g_of({"x": [], "c": ["d"], "d": ["c"], "a": ["b"], "b": ["a"], "e": ["a", "c"]})
    cycles = graph.find_cycles(g)
    assert [c[0] for c in cycles] == ["c", "a"]
    assert [sorted(set(c)) for c in cycles] == [["c", "d"], ["a", "b"]]


def test_topological_order_is_stable():
    order = ["report", "lint", "test", "build", "docs"]
    g = g_of({"report": ["test", "lint"], "lint": [], "test": ["build"], "build": [], "docs": []}, order)
    assert graph.topological_order(g, order) == ["lint", "build", "test", "report", "docs"]
    # no edges: the file's order
    assert graph.topological_order(g_of({"b": [], "a": [], "c": []}), ["b", "a", "c"]) == ["b", "a", "c"]


def _small():
    return api.validate(str(SMALL / "amelia.yaml"))


def test_stable_order_is_networkx_order_without_networkx():
    """The same order as topological_order on random DAGs; None on a graph with a cycle."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 12)
        order = [f"s{i}" for i in range(n)]
        rank = rng.sample(range(n), n)  # a hidden order the edges follow: no cycle
        edges = {s: {t for t in order if rank[order.index(t)] < rank[order.index(s)] and rng.random() < 0.3}
                 for s in order}
        assert graph.stable_order(order, edges) == graph.topological_order(graph.build(order, edges), order)
    assert graph.stable_order(["a", "b", "c"], {"a": {"c"}, "b": set(), "c": {"a"}}) is None


def test_small_pipeline_dependencies():
    p = _small()
    assert [(s.id, s.needs, s.data_needs) for s in p.steps] == [
        ("discovery", (), ()),
        ("design", ("discovery",), ("discovery",)),  # a reference
        ("tests", (), ()),
        ("planning", ("design", "tests"), ("design",)),  # a file, and an ordering
    ]


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_render(fmt):
    assert_golden(graph.render(_small(), fmt), SMALL / f"expected.{fmt}")


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_graph_command(project, fmt):
    shutil.copy(SMALL / "amelia.yaml", project.root / "amelia.yaml")
    proc = project.run("graph", "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (SMALL / f"expected.{fmt}").read_text()


def test_graph_command_defaults_to_text(project):
    shutil.copy(SMALL / "amelia.yaml", project.root / "amelia.yaml")
    proc = project.run("graph", check=0)
    assert proc.stdout == (SMALL / "expected.text").read_text()


def test_graph_command_bad_format(project):
    shutil.copy(SMALL / "amelia.yaml", project.root / "amelia.yaml")
    proc = project.run("graph", "--format", "png")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_graph_of_an_invalid_file_reports_the_error(project):
    shutil.copy(CASES / "invalid_cycle" / "amelia.yaml", project.root / "amelia.yaml")
    proc = project.run("graph")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (CASES / "invalid_cycle" / "expected.txt").read_text()


def test_dot_quotes_names():
    p = _small()
    out = graph.render(p, "dot")
    assert out.startswith('digraph "small" {')
    assert '"design" -> "planning";' in out
    assert '"tests" -> "planning" [style=dashed];' in out


def test_foreach_ids_are_quoted_for_dot_and_mermaid():
    """An instance's id holds its item, which may hold a quote or a backslash."""
    from types import SimpleNamespace

    steps = (SimpleNamespace(id='greet[a"b\\c]', kind="run", needs=(), data_needs=()),
             SimpleNamespace(id="all", kind="run", needs=('greet[a"b\\c]',), data_needs=()))
    p = SimpleNamespace(name="p", steps=steps)
    dot = graph.render(p, "dot")
    assert '"greet[a\\"b\\\\c]" -> "all" [style=dashed];' in dot
    assert '["greet[a#quot;b\\c] (run)"]' in graph.render(p, "mermaid")
