"""amelia.planner, pure: hand-built pipelines, fingerprints and records; no disk."""

from __future__ import annotations

import pytest

from amelia.fingerprint import Fingerprint
from amelia.keys import cache_key, key_material
from amelia.planner import BLOCKED, CACHED, ERROR, RUN, Decision, Plan, decide, plan, selection
from amelia.reasons import Reason
from amelia.spec import Pipeline, Step, TemplateVar, canonical_json


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


def texts(reasons) -> tuple:
    return tuple(str(r) for r in reasons)


def actions(p: Plan) -> dict:
    return {d.step: d.action for d in p.decisions}


@pytest.fixture
def w() -> World:
    return World()


def test_everything_new_runs_roots_and_blocks_the_rest(w):
    p = w.plan(records={})
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": RUN, "d": BLOCKED}
    by = p.by_step()
    assert texts(by["b"].reasons) == ("after a",)
    assert texts(by["d"].reasons) == ("after b",)
    assert texts(by["a"].reasons) == ()  # no history given: no reasons
    assert by["a"].key and by["a"].material["inputs"] == {"src.txt": h("src")}
    assert p.counts() == {RUN: 2, CACHED: 0, BLOCKED: 2, ERROR: 0}
    assert [d.step for d in p.stale()] == ["a", "b", "c", "d"]


def test_all_recorded_is_all_cached(w):
    p = w.plan()
    assert set(actions(p).values()) == {CACHED}
    assert p.stale() == []
    a = p.by_step()["a"]
    assert a.outputs == w.outputs["a"] and a.restore == () and texts(a.reasons) == ()
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
    assert by["a"].restore == ("a.txt",) and texts(by["a"].reasons) == ("restore a.txt",)
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
    assert texts(p.by_step()["b"].reasons) == ("after a",)


def test_needs_only_dependency_also_blocks(w):
    records = w.records()
    del records[w.key("b")]
    p = w.plan(records=records)
    assert actions(p) == {"a": CACHED, "b": RUN, "c": CACHED, "d": BLOCKED}
    assert texts(p.by_step()["d"].reasons) == ("after b",)


def test_blocked_lists_every_waiting_upstream():
    a, b = mkstep("a"), mkstep("b")
    j = mkstep("j", needs=("a", "b"))
    p = plan(mkpipeline(a, b, j), {s: Fingerprint() for s in "abj"}, {})
    assert texts(p.by_step()["j"].reasons) == ("after a", "after b")


def test_blocked_propagates_through_blocked(w):
    p = w.plan(records={k: v for k, v in w.records().items() if v[0] != "a"})
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": CACHED, "d": BLOCKED}


def test_force_one_step(w):
    p = w.plan(force=frozenset({"c"}))
    by = p.by_step()
    assert actions(p) == {"a": CACHED, "b": CACHED, "c": RUN, "d": CACHED}
    assert texts(by["c"].reasons) == ("forced",) and by["c"].key == w.key("c")


def test_force_upstream_blocks_dependents(w):
    p = w.plan(force=frozenset({"a"}))
    assert actions(p) == {"a": RUN, "b": BLOCKED, "c": CACHED, "d": BLOCKED}


def test_force_all(w):
    p = w.plan(force_all=True)
    assert actions(p) == {"a": RUN, "b": RUN, "c": RUN, "d": RUN}  # all will run: none is blocked
    assert texts(p.by_step()["a"].reasons) == ("forced",)
    assert texts(p.by_step()["b"].reasons) == ("forced",) and p.by_step()["b"].key == ""


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
    assert texts(by["a"].reasons) == ("input 'src.txt' does not exist and no step writes it",)
    assert by["b"].action == BLOCKED
    assert p.counts()[ERROR] == 1


def test_fingerprint_error_is_an_error(w):
    w.fps["c"] = Fingerprint(error="x.txt is a symlink that leads outside the project root")
    d = w.plan(force_all=True).by_step()["c"]
    assert d.action == ERROR and "outside the project root" in str(d.reasons[0])


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
    assert forced.action == RUN and texts(forced.reasons) == ("forced",)


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


# -- with history: reasons as data, run vs blocked ------------------------------------

def history(w, *sids) -> dict:
    """The last good key material of each step, as the store would give it."""
    return {s: key_material(w.pipeline, w.pipeline.step(s), w.fps[s],
                            {d: w.outputs[d] for d in w.pipeline.step(s).data_needs}) for s in sids}


def test_reasons_are_data(w):
    previous = history(w, "a", "b", "c", "d")
    records = w.records()
    w.fps["a"] = Fingerprint({"src.txt": h("src2")}, {}, {"a.txt": h("a")})
    d = w.plan(records=records, previous=previous).by_step()["a"]
    assert d.action == RUN and d.reasons == (Reason("input_changed", "src.txt"),)
    assert d.reasons[0].to_dict() == {"kind": "input_changed", "subject": "src.txt",
                                      "text": "input src.txt changed"}


def test_a_step_whose_own_input_changed_runs_not_blocked(w):
    previous = history(w, "a", "b", "c", "d")
    records = w.records()
    w.fps["a"] = Fingerprint({"src.txt": h("src2")}, {}, {"a.txt": h("a")})
    w.fps["b"] = Fingerprint({"a.txt": None, "extra.txt": h("x2")}, {"a.txt": "a"}, {"b.txt": h("b")})
    previous["b"]["inputs"]["extra.txt"] = h("x1")
    p = w.plan(records=records, previous=previous)
    by = p.by_step()
    assert by["b"].action == RUN and by["b"].key == ""  # its key waits for a's outputs
    assert by["b"].reasons == (Reason("input_changed", "extra.txt"),)
    assert by["d"].action == BLOCKED and texts(by["d"].reasons) == ("after b",)


def test_a_new_step_behind_a_running_one_runs(w):
    records = w.records()
    w.fps["a"] = Fingerprint({"src.txt": h("src2")}, {}, {"a.txt": h("a")})
    p = w.plan(records=records, previous={})
    assert p.by_step()["b"].action == RUN
    assert texts(p.by_step()["b"].reasons) == ("new step",)


def test_param_change_names_the_param():
    def step(value):
        definition = canonical_json({"run": "echo $X", "static_vars": {"AMELIA_PARAM_GOAL": value}})
        return Step(id="s", kind="run", definition=definition,
                    vars=(TemplateVar("params.goal", "AMELIA_PARAM_GOAL"),))

    old, new = step("reset"), step("sso")
    fp = Fingerprint()
    previous = {"s": key_material(mkpipeline(old), old, fp, {})}
    d = decide(mkpipeline(new), new, fp, {}, {}, False, previous)
    assert d.reasons == (Reason("param_changed", "goal"),)


def test_plan_errors_lists_steps_that_cannot_run(w):
    w.fps["c"] = Fingerprint({}, {}, {"c.txt": None}, missing=("other.txt",))
    p = w.plan()
    assert [d.step for d in p.errors()] == ["c"]


def test_a_kind_that_does_not_restore_runs_when_its_output_is_missing_or_edited(w):
    """An index step's output is a digest of state kept in Qdrant: putting the recorded
    bytes back would claim an index that may be gone, so a missing or edited digest runs
    the step (incremental, cheap) instead of restoring it."""
    import dataclasses

    from amelia.steps import KINDS

    assert KINDS["index"].restores is False and KINDS["run"].restores is True
    src = dataclasses.replace(mkstep("source:docs", inputs=("docs/a.md",), outputs=(".amelia/index/docs.json",)),
                              kind="index")
    p = mkpipeline(src)
    recorded = {".amelia/index/docs.json": h("digest")}
    for on_disk in (None, h("edited by hand")):
        fp = Fingerprint({"docs/a.md": h("a")}, {}, {".amelia/index/docs.json": on_disk})
        key = cache_key(key_material(p, src, fp, {}))
        d = decide(p, src, fp, {}, {key: ("source:docs", recorded)}, False)
        assert d.action == RUN and d.restore == () and d.key == key
        assert [r.subject for r in d.reasons] == [".amelia/index/docs.json"]
        # the same step of a restoring kind would be put back from the store
        run = dataclasses.replace(src, kind="run")
        run_key = cache_key(key_material(p, run, fp, {}))
        d = decide(p, run, fp, {}, {run_key: ("source:docs", recorded)}, False)
        assert d.action == CACHED and d.restore == (".amelia/index/docs.json",)
    # its digest on disk as recorded: cached, nothing to do
    fp = Fingerprint({"docs/a.md": h("a")}, {}, dict(recorded))
    key = cache_key(key_material(p, src, fp, {}))
    assert decide(p, src, fp, {}, {key: ("source:docs", recorded)}, False).action == CACHED
