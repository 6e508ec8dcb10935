"""PURE: (pipeline, fingerprints, records) → what each step will do, and why.

No I/O here: the caller reads the disk (fingerprint) and the store (records) first.
A step whose upstream will run is `blocked`: it is decided again when its upstream
has finished, and stays cached if those outputs came out byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fingerprint import Fingerprint, cache_key, key_material
from .spec import Pipeline, Step

RUN, CACHED, BLOCKED, ERROR = "run", "cached", "blocked", "error"


@dataclass(frozen=True)
class Decision:
    step: str
    action: str  # run | cached | blocked | error
    reasons: tuple = ()
    key: str = ""
    material: dict | None = None  # the key's material, kept for the record
    outputs: dict | None = None  # cached: the recorded output hashes
    restore: tuple = ()  # cached: outputs to put back from the store


@dataclass(frozen=True)
class Plan:
    decisions: tuple  # Decision, in topological order

    def by_step(self) -> dict:
        return {d.step: d for d in self.decisions}

    def stale(self) -> list:
        return [d for d in self.decisions if d.action != CACHED]

    def counts(self) -> dict:
        out = {RUN: 0, CACHED: 0, BLOCKED: 0, ERROR: 0}
        for d in self.decisions:
            out[d.action] += 1
        return out


def selection(pipeline: Pipeline, only: tuple) -> set:
    """The named steps and everything upstream of them."""
    by_id = pipeline.by_id()
    chosen, todo = set(), list(only)
    while todo:
        sid = todo.pop()
        if sid not in chosen:
            chosen.add(sid)
            todo.extend(by_id[sid].needs)
    return chosen


def decide(pipeline: Pipeline, step: Step, fp: Fingerprint, upstream: dict, records: dict,
           forced: bool) -> Decision:
    """One step, with all of its upstream outputs known."""
    if fp.error:
        return Decision(step.id, ERROR, (fp.error,))
    if fp.missing:
        return Decision(step.id, ERROR, tuple(f"input '{m}' does not exist and no step writes it"
                                              for m in fp.missing))
    material = key_material(pipeline, step, fp, upstream)
    key = cache_key(material)
    if forced:
        return Decision(step.id, RUN, ("forced",), key, material)
    head = records.get(key)
    if head is None:
        return Decision(step.id, RUN, (), key, material)  # reasons: see explain()
    outputs = head[1]
    restore = tuple(p for p, h in outputs.items() if fp.outputs.get(p) != h)
    reasons = tuple(f"restore {p}" for p in restore)
    return Decision(step.id, CACHED, reasons, key, material, outputs, restore)


def plan(pipeline: Pipeline, fingerprints: dict, records: dict, force: frozenset = frozenset(),
         force_all: bool = False, selected: set | None = None) -> Plan:
    decisions: dict[str, Decision] = {}
    known: dict[str, dict] = {}  # step → output hashes, for steps that stay cached
    for step in pipeline.steps:
        if selected is not None and step.id not in selected:
            continue
        waiting = [d for d in step.needs if d in decisions and decisions[d].action != CACHED]
        if waiting:
            decisions[step.id] = Decision(step.id, BLOCKED, tuple(f"after {d}" for d in waiting))
            continue
        d = decide(pipeline, step, fingerprints[step.id], known, records,
                   force_all or step.id in force)
        decisions[step.id] = d
        if d.action == CACHED:
            known[step.id] = d.outputs
    return Plan(tuple(decisions.values()))


def explain(material: dict, previous: dict | None, limit: int = 3) -> tuple:
    """Why a key has no record: what differs from the step's last good result."""
    if previous is None:
        return ("new step",)
    if previous.get("v") != material["v"]:
        return ("cache format changed",)
    reasons = []
    if previous.get("kind") != material["kind"] or previous.get("definition") != material["definition"]:
        reasons.append("definition changed")
    old, new = previous.get("inputs", {}), material["inputs"]
    changed = [p for p in new if p in old and old[p] != new[p]]
    added = [p for p in new if p not in old]
    removed = [p for p in old if p not in new]
    upstream_changed = [d for d, outs in material["upstream"].items()
                        if previous.get("upstream", {}).get(d) != outs]
    produced = {p for outs in material["upstream"].values() for p in outs}
    for label, items in (("changed", changed), ("added", added), ("removed", removed)):
        items = [p for p in items if p not in produced and not any(
            p.startswith(o) for o in produced if o.endswith("/"))]
        for p in items[:limit]:
            reasons.append(f"input {p} {label}")
        if len(items) > limit:
            reasons.append(f"{len(items) - limit} more inputs {label}")
    for d in upstream_changed:
        reasons.append(f"upstream {d} changed")
    if previous.get("env_names") != material["env_names"]:
        reasons.append("env vars changed")
    return tuple(reasons) or ("no cached result for these inputs",)
