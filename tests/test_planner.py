"""amelia.planner, pure: hand-built pipelines, fingerprints and records; no disk."""

from __future__ import annotations

import pytest

from amelia import planner
from amelia.fingerprint import Fingerprint, cache_key, key_material
from amelia.planner import BLOCKED, CACHED, ERROR, RUN, Decision, Plan, decide, explain, plan, selection
from amelia.spec import CACHE_FORMAT_VERSION, Pipeline, Step, canonical_json


def mkstep(sid, inputs=(), outputs=(), needs=(), data_needs=None, run=None) -> Step:
    data_needs = tuple(needs) if data_needs is None else tuple(data_needs)
    definition = canonical_json({"run": run or f"make {sid}", "inputs": list(inputs), "outputs": list(outputs)})
    return Step(id=sid, kind="run", definition=definition, inputs=tuple(inputs), outputs=tuple(outputs),
                needs=tuple(sorted(set(needs) | set(data_needs))), data_needs=tuple(sorted(data_needs)))


def mkpipeline(*steps) -> Pipeline:
    return Pipeline(name="t", file="amelia.yaml", root="/nonexistent-root", digest="d", params={},
                    env_names=(), steps=tuple(steps))


def h(s: str) -> str:
    return f"hash-{s}"


class World:
    """A chain  src.txt → a → a.txt → b → b.txt,  and  c  (independent),  d needs b only."""

    def __init__(self):
        self.a = mkstep("a", inputs=("src.txt",), outputs=("a.txt",))
        self.b = mkstep("b", inputs=("a.txt",), outputs=("b.txt",), needs=("a",))
        self.c = mkstep("c", inputs=("other.txt",), outputs=("c.txt",))
        self.d = mkstep("d", outputs=("d.txt",), needs=("b",), data_needs=())  # order only
        self.pipeline = mkpipeline(self.a, self.b, self.c, self.d)
        self.fps = {
            "a": Fingerprint({"src.txt": h("src")}, {}, {"a.txt": h("a")}),
            "b": Fingerprint({"a.txt": None}, {"a.txt": "a"}, {"b.txt": h("b")}),
            "c": Fingerprint({"other.txt": h("other")}, {}, {"c.txt": h("c")}),
            "d": Fingerprint({}, {}, {"d.txt": h("d")}),
        }
        self.outputs = {"a": {"a.txt": h("a")}, "b": {"b.txt": h("b")}, "c": {"c.txt": h("c")},
                        "d": {"d.txt": h("d")}}

    def key(self, sid: str, fps=None) -> str:
        step = self.pipeline.step(sid)
        upstream = {d: self.outputs[d] for d in step.data_needs}
        fp = (fps or self.fps)[sid]
        return cache_key(key_material(self.pipeline, step, fp, upstream))

    def records(self, *sids) -> dict:
        sids = sids or tuple(s.id for s in self.pipeline.steps)
        return {self.key(s): (s, dict(self.outputs[s])) for s in sids}

    def plan(self, records=None, **kw) -> Plan:
        return plan(self.pipeline, self.fps, self.records() if records is None else records, **kw)


def actions(p: Plan) -> dict:
    return {d.step: d.action for d in p.decisions}


@pytest.fixture
def w() -> World:
    return World()


def test_everything_new_runs_roots_and_blocks_the_rest(w):
    p = w.plan(records={})
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": RUN, "d": BLOCKED}
    by = p.by_step()
    assert by["b"].reasons == ("after a",)
    assert by["d"].reasons == ("after b",)
    assert by["a"].reasons == ()  # explain() gives the reason later, from the store
    assert by["a"].key and by["a"].material["inputs"] == {"src.txt": h("src")}
    assert p.counts() == {RUN: 2, CACHED: 0, BLOCKED: 2, ERROR: 0}
    assert [d.step for d in p.stale()] == ["a", "b", "c", "d"]


def test_all_recorded_is_all_cached(w):
    p = w.plan()
    assert set(actions(p).values()) == {CACHED}
    assert p.stale() == []
    a = p.by_step()["a"]
    assert a.outputs == w.outputs["a"] and a.restore == () and a.reasons == ()
    assert p.counts()[CACHED] == 4


def test_decisions_keep_topological_order(w):
    p = w.plan()
    assert [d.step for d in p.decisions] == ["a", "b", "c", "d"]


def test_output_missing_or_different_on_disk_is_restored(w):
    w.fps["a"] = Fingerprint({"src.txt": h("src")}, {}, {"a.txt": None})
    w.fps["c"] = Fingerprint({"other.txt": h("other")}, {}, {"c.txt": h("edited by hand")})
    keys = {s: w.key(s) for s in "ac"}
    p = w.plan(records=w.records())
    by = p.by_step()
    assert actions(p) == {"a": CACHED, "b": CACHED, "c": CACHED, "d": CACHED}
    assert by["a"].restore == ("a.txt",) and by["a"].reasons == ("restore a.txt",)
    assert by["c"].restore == ("c.txt",)
    assert by["b"].restore == ()
    assert by["a"].key == keys["a"]


def test_only_the_changed_output_of_several_is_restored():
    s = mkstep("s", outputs=("x", "y/"))
    fp = Fingerprint({}, {}, {"x": "hx", "y/": "tree-old"})
    key = cache_key(key_material(mkpipeline(s), s, fp, {}))
    d = decide(mkpipeline(s), s, fp, {}, {key: ("s", {"x": "hx", "y/": "tree-new"})}, False)
    assert d.action == CACHED and d.restore == ("y/",)


def test_changed_input_runs_and_blocks_dependents_only(w):
    records = w.records()
    w.fps["a"] = Fingerprint({"src.txt": h("src2")}, {}, {"a.txt": h("a")})
    p = w.plan(records=records)
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": CACHED, "d": BLOCKED}
    assert p.by_step()["b"].reasons == ("after a",)


def test_needs_only_dependency_also_blocks(w):
    records = w.records()
    del records[w.key("b")]
    p = w.plan(records=records)
    assert actions(p) == {"a": CACHED, "b": RUN, "c": CACHED, "d": BLOCKED}
    assert p.by_step()["d"].reasons == ("after b",)


def test_blocked_lists_every_waiting_upstream():
    a, b = mkstep("a"), mkstep("b")
    j = mkstep("j", needs=("a", "b"))
    p = plan(mkpipeline(a, b, j), {s: Fingerprint() for s in "abj"}, {})
    assert p.by_step()["j"].reasons == ("after a", "after b")


def test_blocked_propagates_through_blocked(w):
    p = w.plan(records={k: v for k, v in w.records().items() if v[0] != "a"})
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": CACHED, "d": BLOCKED}


def test_force_one_step(w):
    p = w.plan(force=frozenset({"c"}))
    by = p.by_step()
    assert actions(p) == {"a": CACHED, "b": CACHED, "c": RUN, "d": CACHED}
    assert by["c"].reasons == ("forced",) and by["c"].key == w.key("c")


def test_force_upstream_blocks_dependents(w):
    p = w.plan(force=frozenset({"a"}))
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": CACHED, "d": BLOCKED}


def test_force_all(w):
    p = w.plan(force_all=True)
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": RUN, "d": BLOCKED}
    assert p.by_step()["a"].reasons == ("forced",)


def test_selection_includes_everything_upstream(w):
    assert selection(w.pipeline, ("d",)) == {"a", "b", "d"}
    assert selection(w.pipeline, ("b",)) == {"a", "b"}
    assert selection(w.pipeline, ("c",)) == {"c"}
    assert selection(w.pipeline, ("a", "c")) == {"a", "c"}
    assert selection(w.pipeline, ()) == set()


def test_plan_with_selection_skips_the_rest(w):
    fps = {k: v for k, v in w.fps.items() if k in ("a", "b")}  # only the selected are fingerprinted
    p = plan(w.pipeline, fps, {}, selected=selection(w.pipeline, ("b",)))
    assert actions(p) == {"a": RUN, "b": BLOCKED}


def test_missing_input_is_an_error_and_blocks_dependents(w):
    w.fps["a"] = Fingerprint({}, {}, {"a.txt": None}, missing=("src.txt",))
    p = w.plan()
    by = p.by_step()
    assert by["a"].action == ERROR
    assert by["a"].reasons == ("input 'src.txt' does not exist and no step writes it",)
    assert by["b"].action == BLOCKED
    assert p.counts()[ERROR] == 1


def test_fingerprint_error_is_an_error(w):
    w.fps["c"] = Fingerprint(error="x.txt is a symlink that leads outside the project root")
    d = w.plan(force_all=True).by_step()["c"]
    assert d.action == ERROR and "outside the project root" in d.reasons[0]


def test_early_cutoff_identical_upstream_output_stays_cached(w):
    """b is blocked while a re-runs; a's outputs come out byte-identical: b is a hit."""
    records = w.records()
    w.fps["a"] = Fingerprint({"src.txt": h("src-reformatted")}, {}, {"a.txt": h("a")})
    p = w.plan(records=records)
    assert p.by_step()["b"].action == BLOCKED
    known = {"a": {"a.txt": h("a")}}  # a ran and wrote the same bytes
    d = decide(w.pipeline, w.b, w.fps["b"], known, records, False)
    assert d.action == CACHED and d.key == w.key("b")
    changed = decide(w.pipeline, w.b, w.fps["b"], {"a": {"a.txt": h("a-new")}}, records, False)
    assert changed.action == RUN and changed.key != w.key("b")
    forced = decide(w.pipeline, w.b, w.fps["b"], known, records, True)
    assert forced.action == RUN and forced.reasons == ("forced",)


def test_planner_is_pure_no_filesystem(w, monkeypatch):
    import builtins
    import os

    def boom(*a, **k):
        raise AssertionError("the planner touched the filesystem")

    for name in ("stat", "lstat", "scandir", "listdir", "open"):
        monkeypatch.setattr(os, name, boom)
    monkeypatch.setattr(builtins, "open", boom)
    w.plan()
    w.plan(records={}, force_all=True)


def test_plan_of_an_empty_pipeline():
    p = plan(mkpipeline(), {}, {})
    assert p.decisions == () and p.counts() == {RUN: 0, CACHED: 0, BLOCKED: 0, ERROR: 0}


def test_decision_is_frozen():
    d = Decision("a", RUN)
    with pytest.raises(Exception):
        d.action = CACHED  # type: ignore[misc]


# -- explain --------------------------------------------------------------------------

def material(inputs=None, upstream=None, definition='{"run":"x"}', kind="run", env=(), v=CACHE_FORMAT_VERSION):
    return {"v": v, "kind": kind, "definition": definition, "inputs": dict(inputs or {}),
            "upstream": dict(upstream or {}), "env_names": list(env)}


def test_explain_new_step():
    assert explain(material(), None) == ("new step",)


def test_explain_cache_format_changed():
    assert explain(material(), material(v=CACHE_FORMAT_VERSION - 1)) == ("cache format changed",)


def test_explain_definition_changed():
    assert explain(material(definition='{"run":"y"}'), material()) == ("definition changed",)
    assert explain(material(kind="agent"), material()) == ("definition changed",)


def test_explain_inputs_changed_added_removed():
    old = material({"a": "1", "b": "1", "gone": "1"})
    new = material({"a": "2", "b": "1", "fresh": "1"})
    assert explain(new, old) == ("input a changed", "input fresh added", "input gone removed")


def test_explain_limit_and_more():
    old = material({f"f{i}": "1" for i in range(7)})
    new = material({f"f{i}": "2" for i in range(7)})
    assert explain(new, old) == ("input f0 changed", "input f1 changed", "input f2 changed",
                                 "4 more inputs changed")
    assert explain(new, old, limit=6) == tuple(f"input f{i} changed" for i in range(6)) + (
        "1 more inputs changed",)
    assert explain(new, old, limit=7) == tuple(f"input f{i} changed" for i in range(7))
    added = material({f"n{i}": "1" for i in range(5)})
    assert explain(added, material(), limit=2) == ("input n0 added", "input n1 added", "3 more inputs added")


def test_explain_upstream_changed_names_the_step_not_its_files():
    old = material({"a.txt": "1", "gen/": "tree-1", "gen/x": "1"},
                   {"up": {"a.txt": "1"}, "gen": {"gen/": "tree-1"}})
    new = material({"a.txt": "2", "gen/": "tree-2", "gen/x": "2"},
                   {"up": {"a.txt": "2"}, "gen": {"gen/": "tree-2"}})
    assert explain(new, old) == ("upstream up changed", "upstream gen changed")


def test_explain_upstream_added():
    assert explain(material(upstream={"up": {"o": "1"}}), material()) == ("upstream up changed",)


def test_explain_env_vars_changed():
    assert explain(material(env=("AMELIA_ENV_X",)), material()) == ("env vars changed",)


def test_explain_several_reasons_in_order():
    old = material({"a": "1"}, {"up": {"o": "1"}})
    new = material({"a": "2"}, {"up": {"o": "2"}}, definition='{"run":"z"}')
    assert explain(new, old) == ("definition changed", "input a changed", "upstream up changed")


def test_explain_same_material_has_a_fallback():
    assert explain(material({"a": "1"}), material({"a": "1"})) == ("no cached result for these inputs",)


def test_explain_from_a_real_plan(w):
    """The material a RUN decision carries explains itself against the last record's."""
    old = key_material(w.pipeline, w.a, w.fps["a"], {})
    w.fps["a"] = Fingerprint({"src.txt": h("src2")}, {}, {"a.txt": h("a")})
    d = w.plan(records={}).by_step()["a"]
    assert explain(d.material, old) == ("input src.txt changed",)
    assert planner.explain(d.material, None) == ("new step",)
