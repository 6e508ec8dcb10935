"""params_files, fields of object params, step-level `params:`, and -p on a leaf."""

from __future__ import annotations

import hashlib
import json

import pytest

from amelia import schema
from amelia.errors import ErrorGroup, PipelineError, UsageError
from amelia.resolve.params_files import coerce_like, lookup, set_leaf

import resolving

PARAMS = "train:\n  n_est: 50\n  seed: 7\n  opts: {b: 1, a: 2}\nsplit: 0.2\n"


def resolved(root, text, overrides=None, params=PARAMS, placeholders=False):
    (root / "params.yaml").write_text(params)
    return resolving.resolved(root, text, overrides, (), placeholders)


def errors(root, text, **kw):
    with pytest.raises((PipelineError, ErrorGroup)) as info:
        resolved(root, text, **kw)
    e = info.value
    return [x.message for x in (e.errors if isinstance(e, ErrorGroup) else [e])]


ONE = """\
amelia: 1
params_files: [params.yaml]
steps:
  t:
    run: echo ${{ params.train.n_est }}
    params: [train.seed, split]
"""


def test_leaves_and_listed_keys_are_the_steps_static_vars(tmp_path):
    p = resolved(tmp_path, ONE)
    step = p.step("t")
    assert step.static_vars == {"AMELIA_PARAM_TRAIN_N_EST": "50", "AMELIA_PARAM_TRAIN_SEED": "7",
                                "AMELIA_PARAM_SPLIT": "0.2"}
    assert [v.ref for v in step.vars] == ["params.train.n_est", "params.train.seed", "params.split"]
    assert step.config.command == "echo ${AMELIA_PARAM_TRAIN_N_EST}"
    sha = hashlib.sha256(PARAMS.encode()).hexdigest()
    assert ("params.yaml", sha) in p.sources


def test_the_key_covers_only_what_a_step_reads(tmp_path):
    first = resolved(tmp_path, ONE).step("t").definition
    # An edit to an unread key, a comment, an order: the same definition.
    same = resolved(tmp_path, ONE, params="# c\nsplit: 0.2\ntrain: {opts: {a: 2}, seed: 7, n_est: 50}\n")
    assert same.step("t").definition == first
    # The listed keys in another order: the same definition.
    swapped = resolved(tmp_path, ONE.replace("[train.seed, split]", "[split, train.seed]"))
    assert swapped.step("t").definition == first
    changed = resolved(tmp_path, ONE, params=PARAMS.replace("seed: 7", "seed: 8"))
    assert changed.step("t").definition != first


def test_an_object_is_json_with_sorted_keys_from_a_file_and_as_declared_otherwise(tmp_path):
    text = """\
    amelia: 1
    params_files: [params.yaml]
    params:
      cfg: {type: object, default: {z: 1, y: {k: v}}}
    steps:
      t:
        run: echo ${{ params.train.opts }} ${{ params.cfg }} ${{ params.cfg.y.k }}
    """
    static = resolved(tmp_path, text).step("t").static_vars
    assert static["AMELIA_PARAM_TRAIN_OPTS"] == '{"a": 2, "b": 1}'
    assert static["AMELIA_PARAM_CFG"] == '{"z": 1, "y": {"k": "v"}}'  # unchanged: its key must not move
    assert static["AMELIA_PARAM_CFG_Y_K"] == "v"


def test_leaves_build_paths(tmp_path):
    text = ONE + "    output: out/${{ params.train.n_est }}.txt\n"
    assert resolved(tmp_path, text).step("t").outputs == ("out/50.txt",)


def test_p_sets_a_leaf_in_its_type(tmp_path):
    p = resolved(tmp_path, ONE, overrides={"train.n_est": "60"})
    assert p.step("t").static_vars["AMELIA_PARAM_TRAIN_N_EST"] == "60"
    assert p.params["train"]["n_est"] == 60


def test_p_cannot_override_a_key_a_step_only_lists(tmp_path):
    """The step reads the params file itself: the override would change its key, not what
    its command sees, and a wrong result would be cached under the new key."""
    assert errors(tmp_path, ONE, overrides={"split": "0.5"}) == [
        "-p split=… cannot reach step 't': it lists split under `params:`, so it reads the params file itself"]
    assert errors(tmp_path, ONE, overrides={"train": '{"n_est": 1, "seed": 2}'}) == [
        "-p train=… cannot reach step 't': it lists train.seed under `params:`, so it reads the params file itself"]


def test_declared_and_file_params_mix_in_overrides(tmp_path):
    text = ONE.replace("params_files:", "params:\n  goal: {default: x}\nparams_files:")
    p = resolved(tmp_path, text, overrides={"goal": "y", "train.n_est": "9"})
    assert p.params["goal"] == "y" and p.params["train"]["n_est"] == 9
    with pytest.raises(UsageError, match="unknown param 'gaol'") as info:
        resolved(tmp_path, text, overrides={"gaol": "y"})
    assert "did you mean 'goal'" in info.value.hint


def test_a_stand_in_object_has_every_field_when_only_checking(tmp_path):
    text = """\
    amelia: 1
    params:
      cfg: {type: object}
    steps:
      t: {run: "echo ${{ params.cfg.anything }}"}
    """
    p = resolved(tmp_path, text, placeholders=True)
    assert p.step("t").static_vars == {"AMELIA_PARAM_CFG_ANYTHING": ""}
    assert errors(tmp_path, text.replace("cfg: {type: object}", "cfg: {type: object, default: {a: 1}}")) == [
        "param 'cfg' has no key 'anything'"]


@pytest.mark.parametrize("params, message", [
    ("- a\n- b\n", "params file 'params.yaml' holds a list, not a mapping of names to values"),
    ("a: [1\n", "params file 'params.yaml' is not valid YAML at line 1, column 4"),
])
def test_a_bad_file_is_one_error_at_its_entry(tmp_path, params, message):
    found = errors(tmp_path, ONE, params=params)
    assert len(found) == 1 and found[0].startswith(message)  # no follow-on "undefined param"


def test_an_empty_file_gives_no_params(tmp_path):
    assert errors(tmp_path, ONE, params="") == [
        "undefined param 'train' in 'params.train.n_est'", "undefined param 'train' in 'params.train.seed'",
        "undefined param 'split' in 'params.split'"]


def test_lookup_and_set_leaf():
    params = {"a": {"b": {"c": 1}, "s": "x"}}
    assert lookup(params, ["a", "b", "c"]) == (1, None)
    assert lookup(params, ["a", "s", "t"])[1][0] == "'params.a.s.t' reads a field of param 'a.s', which is a string"
    set_leaf(params, "a.b.c", "2.5")
    assert params["a"]["b"]["c"] == 2.5
    with pytest.raises(UsageError, match="unknown param 'a.b.d'"):
        set_leaf(params, "a.b.d", "1")


@pytest.mark.parametrize("old, raw, new", [
    ("text", "yes", "yes"), (1, "2", 2), (1.5, "2", 2.0), (1, "2.5", 2.5), (True, "false", False),
    ([1], "[2, 3]", [2, 3]), ({"a": 1}, '{"b": 2}', {"b": 2}), (None, "3", 3)])
def test_coerce_like_keeps_the_type_where_sensible(old, raw, new):
    got = coerce_like("p", old, raw)
    assert got == new and type(got) is type(new)


@pytest.mark.parametrize("old, raw", [(1, "x"), (True, "1"), ([1], "x"), ({"a": 1}, "[1]")])
def test_coerce_like_refuses_another_type(old, raw):
    with pytest.raises(UsageError):
        coerce_like("p", old, raw)


def test_schema_prints_the_new_keys():
    data = json.loads(open(schema.schema_path()).read())
    assert "params_files" in data["properties"]
    assert {"params", "foreach"} <= set(data["$defs"]["step"]["properties"])
