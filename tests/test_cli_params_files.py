"""`params_files:` end to end (DVC's params.yaml): a step re-runs only when a key it
reads or lists changed; a comment, a reordering or an unread key re-runs nothing."""

from __future__ import annotations

import json
import time

import pytest

PIPELINE = """\
amelia: 1
params_files: [params.yaml]
steps:
  prepare:
    run: echo "split $AMELIA_PARAM_PREPARE_SPLIT" > prepared.txt && echo x >> .ran-prepare
    params: [prepare.split]
    output: prepared.txt
  featurize:
    run: echo "${{ params.featurize.max_features }}" > features.txt && echo x >> .ran-featurize
    output: features.txt
  train:
    run: echo "${{ params.train.n_est }} ${{ params.train.opts }} $AMELIA_PARAM_TRAIN_SEED" > model.txt && echo x >> .ran-train
    params: [train.seed]
    output: model.txt
  evaluate:
    run: echo done > metrics.txt && echo x >> .ran-evaluate
    output: metrics.txt
"""

PARAMS = """\
# the experiment's settings
prepare:
  split: 0.2
featurize:
  max_features: 100
train:
  n_est: 50
  seed: 7
  opts: {depth: 3, alpha: 0.5}
  notes: not read by any step
"""

STEPS = ("prepare", "featurize", "train", "evaluate")


def ran(project) -> dict:
    """How many times each step has run so far."""
    out = {}
    for s in STEPS:
        p = project.root / f".ran-{s}"
        out[s] = len(p.read_text().splitlines()) if p.exists() else 0
    return out


def settle():
    time.sleep(0.15)  # mtimes age past the racy window


@pytest.fixture
def dvc(project):
    project.pipeline(PIPELINE)
    project.write("params.yaml", PARAMS)
    project.run("run", check=0)
    assert ran(project) == dict.fromkeys(STEPS, 1)
    settle()
    return project


def test_values_reach_the_commands(dvc):
    assert dvc.read("prepared.txt") == "split 0.2\n"
    assert dvc.read("features.txt") == "100\n"
    # An object reaches a command as JSON with sorted keys; a listed key as its variable.
    assert dvc.read("model.txt") == '50 {"alpha": 0.5, "depth": 3} 7\n'


def test_comment_reorder_and_unread_keys_rerun_nothing(dvc):
    edited = ("featurize:\n  max_features: 100   # tuned\n"
              "train:\n  opts: {alpha: 0.5, depth: 3}\n  seed: 7\n  n_est: 50\n  notes: changed\n"
              "prepare:\n  split: 0.2\nunused: {a: 1}\n")
    dvc.write("params.yaml", edited)
    r = dvc.run("run", check=0)
    assert "0 ran, 4 cached" in r.stdout
    assert ran(dvc) == dict.fromkeys(STEPS, 1)


def test_changing_one_key_reruns_only_the_steps_that_read_it(dvc):
    dvc.write("params.yaml", PARAMS.replace("n_est: 50", "n_est: 80"))
    plan = dvc.run("plan", check=0)
    assert "param train.n_est changed" in plan.stdout
    dvc.run("run", check=0)
    assert ran(dvc) == {"prepare": 1, "featurize": 1, "train": 2, "evaluate": 1}
    assert dvc.read("model.txt").startswith("80 ")
    settle()
    # A listed key (not templated) is part of the key too.
    dvc.write("params.yaml", PARAMS.replace("n_est: 50", "n_est: 80").replace("split: 0.2", "split: 0.3"))
    dvc.run("run", check=0)
    assert ran(dvc) == {"prepare": 2, "featurize": 1, "train": 2, "evaluate": 1}
    assert dvc.read("prepared.txt") == "split 0.3\n"
    settle()
    # Back to the first values: restored from the cache, nothing runs.
    dvc.write("params.yaml", PARAMS)
    r = dvc.run("run", check=0)
    assert "0 ran" in r.stdout
    assert dvc.read("model.txt").startswith("50 ")


def test_p_overrides_a_leaf(dvc):
    r = dvc.run("run", "-p", "train.n_est=60", check=0)
    assert "1 ran, 3 cached" in r.stdout
    assert dvc.read("model.txt").startswith("60 ")
    settle()
    r = dvc.run("run", "-p", "train.n_est=60", check=0)
    assert "0 ran, 4 cached" in r.stdout
    # A whole object, and a list, as YAML flow text.
    r = dvc.run("run", "-p", "train.opts={depth: 4}", check=0)
    assert dvc.read("model.txt") == '50 {"depth": 4} 7\n'


@pytest.mark.parametrize("arg, message", [
    ("train.n_est=many", "error: param 'train.n_est' is an integer, got 'many'"),
    ("train.n_ets=60", "error: unknown param 'train.n_ets' given with -p\n  hint: did you mean 'n_est'?"),
    ("trian.n_est=60", "error: unknown param 'trian.n_est' given with -p\n  hint: did you mean 'train'?"),
    ("train.seed.x=1", "error: cannot set 'train.seed.x' with -p: param 'train.seed' is an integer, not an object"),
    ("train.opts=3", "error: param 'train.opts' is an object, got '3'"),
])
def test_bad_p_is_a_usage_error(dvc, arg, message):
    r = dvc.run("run", "-p", arg)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_json_params_file_and_a_changed_file_redoes_the_cached_resolution(project):
    project.pipeline("amelia: 1\nparams_files: [conf/params.json]\nsteps:\n"
                     "  a:\n    run: echo ${{ params.model.name }} > a.txt\n    output: a.txt\n")
    project.write("conf/params.json", json.dumps({"model": {"name": "small", "layers": 2}}))
    project.run("run", check=0)
    assert project.read("a.txt") == "small\n"
    settle()
    project.write("conf/params.json", json.dumps({"model": {"name": "big", "layers": 2}}))
    r = project.run("run", check=0)
    assert "1 ran" in r.stdout and project.read("a.txt") == "big\n"
    project.write("conf/params.json", "{not json")
    r = project.run("run")
    assert r.returncode == 2
    assert "error: params file 'conf/params.json' is not valid JSON" in r.stderr
    assert "at params_files[0]" in r.stderr
