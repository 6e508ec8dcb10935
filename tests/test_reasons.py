"""amelia.reasons: what differs between two key materials, and how it is worded."""

from __future__ import annotations

from amelia.reasons import Reason, explain, word
from amelia.spec import CACHE_FORMAT_VERSION, Step, TemplateVar, canonical_json

STEP = Step(id="s", kind="run", definition="{}")


def material(inputs=None, upstream=None, definition='{"run":"x"}', kind="run", env=(), v=CACHE_FORMAT_VERSION):
    return {"v": v, "kind": kind, "definition": definition, "inputs": dict(inputs or {}),
            "upstream": dict(upstream or {}), "env_names": list(env)}


def texts(reasons) -> tuple:
    return tuple(str(r) for r in reasons)


def test_new_step():
    assert explain(STEP, material(), None) == (Reason("new_step"),)


def test_cache_format_changed():
    assert texts(explain(STEP, material(), material(v=CACHE_FORMAT_VERSION - 1))) == ("cache format changed",)


def test_definition_changed_names_the_field():
    assert explain(STEP, material(definition='{"run":"y"}'), material()) == (
        Reason("definition_changed", "run"),)
    assert texts(explain(STEP, material(definition='{"run":"y"}'), material())) == ("definition changed (run)",)
    assert texts(explain(STEP, material(kind="agent"), material())) == ("step kind changed",)


def test_prompt_file_change_names_the_file():
    old = canonical_json({"prompt": "prompts/design.md", "agent": {"prompt": "v1", "system": "s"}})
    new = canonical_json({"prompt": "prompts/design.md", "agent": {"prompt": "v2", "system": "s"}})
    assert explain(STEP, material(definition=new), material(definition=old)) == (
        Reason("prompt_changed", "prompts/design.md"),)


def test_system_and_model_changes():
    old = canonical_json({"agent": {"system": "a", "model": {"m": 1}}})
    new = canonical_json({"agent": {"system": "b", "model": {"m": 2}}})
    assert texts(explain(STEP, material(definition=new), material(definition=old))) == (
        "model settings changed", "definition changed (agent.system)")


def test_param_change_names_the_param_not_its_variable():
    step = Step(id="s", kind="run", definition="{}", vars=(TemplateVar("params.goal", "AMELIA_PARAM_GOAL"),))
    old = canonical_json({"run": "x", "static_vars": {"AMELIA_PARAM_GOAL": "a"}})
    new = canonical_json({"run": "x", "static_vars": {"AMELIA_PARAM_GOAL": "b"}})
    assert explain(step, material(definition=new), material(definition=old)) == (Reason("param_changed", "goal"),)


def test_inputs_changed_added_removed():
    old = material({"a": "1", "b": "1", "gone": "1"})
    new = material({"a": "2", "b": "1", "fresh": "1"})
    assert texts(explain(STEP, new, old)) == ("input a changed", "input fresh added", "input gone removed")


def test_every_file_is_data_and_the_wording_cuts_long_lists():
    old = material({f"f{i}": "1" for i in range(7)})
    new = material({f"f{i}": "2" for i in range(7)})
    reasons = explain(STEP, new, old)
    assert len(reasons) == 7
    assert word(reasons) == ("input f0 changed; input f1 changed; input f2 changed; "
                             "4 more inputs changed")
    assert word(reasons, limit=7) == "; ".join(f"input f{i} changed" for i in range(7))
    added = explain(STEP, material({f"n{i}": "1" for i in range(5)}), material())
    assert word(added, limit=2) == "input n0 added; input n1 added; 3 more inputs added"
    ups = [Reason("upstream_changed", f"compile[f{i}]") for i in range(32)]
    assert word(ups) == ("upstream compile[f0] changed; upstream compile[f1] changed; "
                         "upstream compile[f2] changed; 29 more upstreams changed")


def test_upstream_changed_names_the_step_not_its_files():
    old = material({"a.txt": "1", "gen/": "tree-1", "gen/x": "1"},
                   {"up": {"a.txt": "1"}, "gen": {"gen/": "tree-1"}})
    new = material({"a.txt": "2", "gen/": "tree-2", "gen/x": "2"},
                   {"up": {"a.txt": "2"}, "gen": {"gen/": "tree-2"}})
    produced = frozenset({"a.txt", "gen/"})
    assert texts(explain(STEP, new, old, produced)) == ("upstream up changed", "upstream gen changed")


def test_upstream_unknown_says_only_own_changes():
    old = material({"a.txt": "1", "own": "1"}, {"up": {"a.txt": "1"}})
    new = material({"a.txt": None, "own": "1"}, {})
    assert explain(STEP, new, old, frozenset({"a.txt"}), upstream_known=False) == ()
    new["inputs"]["own"] = "2"
    assert texts(explain(STEP, new, old, frozenset({"a.txt"}), upstream_known=False)) == ("input own changed",)


def test_env_vars_changed():
    assert texts(explain(STEP, material(env=("AMELIA_ENV_X",)), material())) == ("env vars changed",)


def test_same_material_has_a_fallback():
    assert texts(explain(STEP, material({"a": "1"}), material({"a": "1"}))) == ("no cached result for these inputs",)


def test_every_kind_has_wording():
    from amelia.reasons import WORDING

    for kind in WORDING:
        assert str(Reason(kind, "x"))
    assert str(Reason("definition_changed")) == "definition changed"  # no empty "()"
