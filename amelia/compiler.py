"""The steps that will run → a LangGraph StateGraph.

One node per step; a step with several predecessors gets one join edge, so it runs
once, after all of them. Steps that stay cached are not nodes at all: the graph is
only the part that runs. Results flow through the state, merged by a reducer.
"""

from __future__ import annotations

from typing import Annotated, TypedDict


def _merge(left: dict, right: dict) -> dict:
    return {**left, **right}


class RunState(TypedDict):
    results: Annotated[dict, _merge]  # step id → {"status": ..., "outputs": {...}}


def node_name(step_id: str) -> str:
    # Node names must not clash with state keys or LangGraph's reserved names.
    return f"step {step_id}"


def compile_graph(step_ids: list, needs: dict, make_node):
    """step_ids: the steps to run, dependencies first; needs: step → its predecessors."""
    from langgraph.graph import END, START, StateGraph

    members = set(step_ids)
    g = StateGraph(RunState)
    has_successor = set()
    for sid in step_ids:
        g.add_node(node_name(sid), make_node(sid))
    for sid in step_ids:
        preds = [node_name(d) for d in needs[sid] if d in members]
        has_successor.update(d for d in needs[sid] if d in members)
        if not preds:
            g.add_edge(START, node_name(sid))
        elif len(preds) == 1:
            g.add_edge(preds[0], node_name(sid))
        else:
            g.add_edge(preds, node_name(sid))  # join: waits for all of them, runs once
    for sid in step_ids:
        if sid not in has_successor:
            g.add_edge(node_name(sid), END)
    return g.compile()
