"""PURE: (pipeline, fingerprints, records) → what each step will do, and why.

No I/O here: the caller reads the disk (fingerprint) and the store (records, and the
last good key material of steps that run) first. `decide` is the one decision; the
scheduler calls it when a step becomes ready, and `plan` is a dry pass of it over the
whole graph. In a dry pass a step whose upstream will run cannot know its key yet: it
is `blocked`, unless its own inputs, params or definition changed, which makes it `run`
whatever its upstream produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .fingerprint import Fingerprint
from .keys import cache_key, key_material
from .spec import Pipeline, Step
from .steps import KINDS

RUN, CACHED, BLOCKED, ERROR = "run", "cached", "blocked", "error"


# reasons.py is imported only when a reason is made: a no-op (all cached, nothing to
# restore) makes none.
def Reason(kind: str, subject: str = ""):  # noqa: N802 (stands in for the class)
    from .reasons import Reason as R

    return R(kind, subject)


def explain(*args, **kwargs) -> tuple:
    from .reasons import explain as e

    return e(*args, **kwargs)


@dataclass(frozen=True)
class Decision:
    step: str
    action: str  # run | cached | blocked | error
    reasons: tuple = ()  # Reason
    key: str = ""  # "" while an upstream has still to run
    material: dict | None = None  # the key's material, kept for the record
    outputs: dict | None = None  # cached: the recorded output hashes
    restore: tuple = ()  # cached: outputs to put back from the store


@dataclass(frozen=True)
class Plan:
    decisions: tuple  # Decision, in topological order
    fingerprints: dict = field(default_factory=dict)  # step → Fingerprint it was decided on

    def by_step(self) -> dict:
        return {d.step: d for d in self.decisions}

    def stale(self) -> list:
        """Decisions that would change the disk: a step to run, or outputs to restore."""
        return [d for d in self.decisions if d.action != CACHED or d.restore]

    def errors(self) -> list:
        return [d for d in self.decisions if d.action == ERROR]

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


def _problems(step: Step, fp: Fingerprint) -> Decision | None:
    if fp.error:
        return Decision(step.id, ERROR, (Reason("input_error", fp.error),))
    if fp.missing:
        return Decision(step.id, ERROR, tuple(Reason("missing_input", m) for m in fp.missing))
    return None


def decide(pipeline: Pipeline, step: Step, fp: Fingerprint, upstream: dict, records: dict,
           forced: bool, previous: Mapping | None = None) -> Decision:
    """One step, with all of its upstream outputs known.

    upstream: step → {output: hash} for the steps it reads; records: key → (step, outputs);
    previous: step → the key material of its last good result (read only if it runs);
    None when history is not known (no reasons are given then).
    """
    problem = _problems(step, fp)
    if problem:
        return problem
    material = key_material(pipeline, step, fp, upstream)
    key = cache_key(material)
    if forced:
        return Decision(step.id, RUN, (Reason("forced"),), key, material)
    if step.always:
        return Decision(step.id, RUN, (Reason("always"),), key, material)
    head = records.get(key)
    if head is None:
        reasons = () if previous is None else explain(step, material, previous.get(step.id),
                                                        frozenset(fp.produced_by))
        return Decision(step.id, RUN, reasons, key, material)
    outputs = head[1]
    restore = tuple(p for p, h in outputs.items() if fp.outputs.get(p) != h)
    reasons = tuple(Reason("output_missing" if fp.outputs.get(p) is None else "output_edited", p)
                    for p in restore)
    if restore and not KINDS[step.kind].restores:  # its output stands for state kept elsewhere
        return Decision(step.id, RUN, tuple(Reason("output_gone" if fp.outputs.get(p) is None
                                                   else "output_changed", p) for p in restore), key, material)
    return Decision(step.id, CACHED, reasons, key, material, outputs, restore)


def _waiting(pipeline: Pipeline, step: Step, fp: Fingerprint, waiting: list, forced: bool,
             previous: Mapping | None) -> Decision:
    """A step whose upstream will run first: run (its own changes say so) or blocked."""
    problem = _problems(step, fp)
    if problem:
        return problem
    if forced:
        return Decision(step.id, RUN, (Reason("forced"),))
    if step.always:
        return Decision(step.id, RUN, (Reason("always"),))
    if previous is None:
        return Decision(step.id, BLOCKED, tuple(Reason("after", d) for d in waiting))
    partial = key_material(pipeline, step, fp, {d: {} for d in step.data_needs})
    own = explain(step, partial, previous.get(step.id), frozenset(fp.produced_by), upstream_known=False)
    if own:
        return Decision(step.id, RUN, own)
    return Decision(step.id, BLOCKED, tuple(Reason("after", d) for d in waiting))


def plan(pipeline: Pipeline, fingerprints: dict, records: dict, force: frozenset = frozenset(),
         force_all: bool = False, selected: set | None = None, previous: Mapping | None = None) -> Plan:
    decisions: dict[str, Decision] = {}
    known: dict[str, dict] = {}  # step → output hashes, for steps that stay cached
    for step in pipeline.steps:
        if selected is not None and step.id not in selected:
            continue
        forced = force_all or step.id in force
        waiting = [d for d in step.needs if d in decisions and decisions[d].action != CACHED]
        fp = fingerprints[step.id]
        if waiting:
            d = _waiting(pipeline, step, fp, waiting, forced, previous)
        else:
            d = decide(pipeline, step, fp, known, records, forced, previous)
        decisions[step.id] = d
        if d.action == CACHED:
            known[step.id] = d.outputs
    return Plan(tuple(decisions.values()), dict(fingerprints))
