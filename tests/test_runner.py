"""amelia.runner in process: restore, collect_outputs, execute and RunContext.template_values.

Pipelines are real (small YAML files resolved by `api.validate`), the store is a real
`Store` in a temporary directory, and steps are real `run:` steps unless a test needs a
kind that misbehaves (then the runner's `implementation` is replaced). Nothing here
depends on how long anything takes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import textwrap
import threading
import types

import pytest

from amelia import api, runner, steps
from amelia.reasons import Reason
from amelia.fingerprint import FileStates
from amelia.planner import Decision
from amelia.processes import CancelToken
from amelia.runner import MAX_ENV_VALUE, Outcome, RunContext, collect_outputs, execute, restore
from amelia.spec import TemplateVar
from amelia.steps import StepError
from amelia.store import Store
from conftest import run_context

PIPELINE = """\
    amelia: 1
    name: t
    params:
      goal: {type: string, default: "$(touch PWNED)"}
    steps:
      a:
        run: |
          mkdir -p build && echo '{"title": "T", "n": {"x": [1, 2]}, "items": ["p", "q"]}' > build/a.json
        output: build/a.json
      b:
        run: echo "${{ params.goal }} ${{ steps.a.json.title }}" > build/b.txt
        output: build/b.txt
      d:
        run: mkdir -p out/d/sub && echo one > out/d/x.txt && echo two > out/d/sub/y.txt
        outputs: [out/d/]
      two:
        run: mkdir -p build && echo x > build/x.txt && echo y > build/y.txt
        outputs: [build/x.txt, build/y.txt]
      fails:
        run: echo about to fail; exit 3
      lazy:
        run: "true"
        output: build/never.txt
      lazydir:
        run: "true"
        outputs: [out/never/]
    """


@pytest.fixture
def proj(tmp_path):
    """(pipeline, store, states) of PIPELINE in a fresh project; the store is closed after."""
    (tmp_path / "amelia.yaml").write_text(textwrap.dedent(PIPELINE))
    pipeline = api.validate(str(tmp_path / "amelia.yaml"))
    store = Store(str(tmp_path))
    yield pipeline, store, FileStates(str(tmp_path), {})
    store.close()


@pytest.fixture
def ctx(proj):
    pipeline, store, _ = proj
    c = RunContext(pipeline, store, "run-1")
    yield c
    c.close()


def decision_for(step, key="key-" + "0" * 60):
    return Decision(step.id, "run", (), key, {"v": "test", "step": step.id})


def run_step(ctx, states, sid, key=None, cancel=None) -> Outcome:
    step = ctx.pipeline.step(sid)
    return execute(ctx, states, step, decision_for(step, key or f"key-{sid}"), cancel or CancelToken())


# -- execute ---------------------------------------------------------------------------

def test_a_step_that_succeeds_hands_its_record_to_the_group_commit(proj, ctx):
    pipeline, store, states = proj
    step = pipeline.step("a")
    d = decision_for(step, "key-a")
    out = execute(ctx, states, step, d, CancelToken())
    assert out.status == "ran" and out.error == "" and out.exit_code is None
    digest = out.outputs["build/a.json"]
    assert store.objects.has(digest)
    ctx.close()  # the group commit is flushed: every record handed over is saved
    assert ctx.commit.error is None
    record = store.records.get("key-a")
    assert record is not None
    assert (record.step, record.outputs, record.detail, record.run_id) == (
        "a", {"build/a.json": digest}, d.material, "run-1")
    assert record.duration == out.duration


def test_a_step_error_becomes_a_failed_outcome_with_its_exit_code_and_tail(proj, ctx):
    _, store, states = proj
    out = run_step(ctx, states, "fails", "key-fails")
    assert out.status == "failed"
    assert out.error == "command exited with code 3"
    assert out.exit_code == 3
    assert out.tail == "about to fail"
    assert out.outputs == {}
    ctx.close()
    assert store.records.get("key-fails") is None  # a failed step leaves no record


def test_a_missing_declared_output_fails_with_the_hint_in_the_message(proj, ctx):
    _, store, states = proj
    out = run_step(ctx, states, "lazy", "key-lazy")
    assert out.status == "failed"
    assert out.error == ("did not write build/never.txt "
                         "(hint: the command must write it, relative to the project root)")
    assert out.exit_code is None
    ctx.close()
    assert store.records.get("key-lazy") is None


def test_an_unexpected_exception_is_an_internal_error_and_never_escapes(proj, ctx, monkeypatch):
    _, store, states = proj

    def broken(step, c, cancel):
        return 1 / 0

    monkeypatch.setattr(runner, "implementation", lambda kind: types.SimpleNamespace(execute=broken))
    out = run_step(ctx, states, "a", "key-broken")
    assert out.status == "failed"
    assert out.error == "internal error: ZeroDivisionError: division by zero"
    assert "Traceback" in out.tail and "broken" in out.tail
    ctx.close()
    assert store.records.get("key-broken") is None


def test_a_cancelled_token_gives_a_cancelled_outcome(proj, ctx):
    _, store, states = proj
    token = CancelToken()
    token.cancel("interrupted")
    out = run_step(ctx, states, "a", "key-cancelled", token)
    assert out.status == "cancelled"
    assert out.error == "interrupted"
    ctx.close()
    assert store.records.get("key-cancelled") is None


def test_a_kind_that_raises_step_cancelled_is_cancelled(proj, ctx, monkeypatch):
    _, _, states = proj

    def checks(step, c, cancel):
        cancel.cancel("watch: file changed")
        cancel.check()

    monkeypatch.setattr(runner, "implementation", lambda kind: types.SimpleNamespace(execute=checks))
    out = run_step(ctx, states, "a")
    assert (out.status, out.error) == ("cancelled", "watch: file changed")


# -- execute, a kind that may block (stops_on_cancel=False: watched in a thread) --------

@pytest.fixture
def blocking_kind(monkeypatch):
    """Step `a` as a kind that may block in a call that cannot be interrupted."""
    monkeypatch.setitem(steps.KINDS, "run", steps.Kind("run", "amelia.steps.run", ("run",), (),
                                                      stops_on_cancel=False))
    monkeypatch.setattr("amelia.processes.GRACE", 0.05)
    released = threading.Event()
    log = []

    def blocks(step, c, cancel):
        log.append("start")
        released.wait(30)
        log.append("answer")
        os.makedirs(os.path.join(c.root, "build"), exist_ok=True)
        with open(os.path.join(c.root, "build", "a.json"), "w") as f:
            f.write("{}")

    monkeypatch.setattr(runner, "implementation", lambda kind: types.SimpleNamespace(execute=blocks))
    yield released, log
    released.set()


def test_a_blocked_call_is_abandoned_once_cancelled_and_the_grace_is_over(proj, ctx, blocking_kind):
    _, store, states = proj
    released, log = blocking_kind
    token = CancelToken()
    token.cancel("interrupted")
    out = run_step(ctx, states, "a", "key-watched", token)
    assert out.status == "cancelled" and out.error == "interrupted"
    assert log == ["start"]  # it returned while the call was still blocked
    released.set()
    ctx.close()
    assert store.records.get("key-watched") is None


def test_a_late_answer_after_cancellation_is_never_kept(proj, ctx, blocking_kind, monkeypatch):
    _, store, states = proj
    released, log = blocking_kind
    monkeypatch.setattr("amelia.processes.GRACE", 60.0)  # the answer comes within the grace
    token = CancelToken()

    def cancel_then_answer():
        while "start" not in log:
            threading.Event().wait(0.005)
        token.cancel("interrupted")
        released.set()

    helper = threading.Thread(target=cancel_then_answer)
    helper.start()
    out = run_step(ctx, states, "a", "key-late", token)
    helper.join(10)
    assert log == ["start", "answer"]
    assert out.status == "cancelled"
    ctx.close()
    assert store.records.get("key-late") is None


def test_a_blocking_kind_that_succeeds_is_recorded(proj, ctx, blocking_kind):
    _, store, states = proj
    released, _ = blocking_kind
    released.set()
    out = run_step(ctx, states, "a", "key-ok")
    assert out.status == "ran"
    ctx.close()
    assert store.records.get("key-ok").outputs == out.outputs


def test_an_internal_error_in_a_blocking_kind_is_reported_too(proj, ctx, monkeypatch):
    _, _, states = proj
    monkeypatch.setitem(steps.KINDS, "run", steps.Kind("run", "amelia.steps.run", ("run",), (),
                                                      stops_on_cancel=False))

    def broken(step, c, cancel):
        raise KeyError("missing")

    monkeypatch.setattr(runner, "implementation", lambda kind: types.SimpleNamespace(execute=broken))
    out = run_step(ctx, states, "a")
    assert out.status == "failed" and out.error == "internal error: KeyError: 'missing'"


# -- collect_outputs ---------------------------------------------------------------------

def test_collect_outputs_stores_files_and_forgets_their_memo(proj, ctx):
    pipeline, store, states = proj
    root = pipeline.root
    os.makedirs(os.path.join(root, "build"))
    for name in ("x", "y"):
        with open(os.path.join(root, "build", f"{name}.txt"), "w") as f:
            f.write(name * 3)
    states.memo["build/x.txt"] = (1, 2, 3, "stale")
    outputs = collect_outputs(ctx, states, pipeline.step("two"))
    assert list(outputs) == ["build/x.txt", "build/y.txt"]
    assert outputs["build/x.txt"] != outputs["build/y.txt"]
    for digest in outputs.values():
        assert store.objects.has(digest)
    with open(store.objects.path(outputs["build/y.txt"])) as f:
        assert f.read() == "yyy"
    assert "build/x.txt" not in states.memo


def test_collect_outputs_stores_a_directory_as_a_tree(proj, ctx):
    pipeline, store, states = proj
    assert run_step(ctx, states, "d").status == "ran"  # the command makes out/d/
    outputs = collect_outputs(ctx, states, pipeline.step("d"))
    digest = outputs["out/d/"]
    assert digest.startswith("tree-")
    assert store.objects.can_restore(digest)
    assert sorted(store.objects.read_tree(digest)) == ["sub/y.txt", "x.txt"]
    assert digest == states.tree("out/d/")  # the name FileStates gives the same directory


def test_a_missing_declared_output_is_a_step_error_with_the_hint(proj, ctx):
    pipeline, _, states = proj
    with pytest.raises(StepError) as e:
        collect_outputs(ctx, states, pipeline.step("lazy"))
    assert e.value.message == "did not write build/never.txt"
    assert e.value.hint == "the command must write it, relative to the project root"


def test_a_missing_declared_output_directory_is_a_step_error(proj, ctx):
    pipeline, _, states = proj
    with pytest.raises(StepError) as e:
        collect_outputs(ctx, states, pipeline.step("lazydir"))
    assert e.value.message == "did not write out/never/"


def test_a_directory_where_a_file_output_is_declared_is_a_step_error(proj, ctx):
    pipeline, _, states = proj
    os.makedirs(os.path.join(pipeline.root, "build", "never.txt"))
    with pytest.raises(StepError, match="output build/never.txt is a directory on disk, but is declared as a file"):
        collect_outputs(ctx, states, pipeline.step("lazy"))


# -- restore -------------------------------------------------------------------------------

def run_planned(ctx, sid):
    """Run a step with the decision the plan makes for it; its record is saved on return."""
    plan, states, _ = api.make_plan(ctx.pipeline, ctx.store)
    d = plan.by_step()[sid]
    assert d.action == "run" and d.key
    out = execute(ctx, states, ctx.pipeline.step(sid), d, CancelToken())
    assert out.status == "ran", out
    ctx.commit.flush()
    return ctx.store.records.get(d.key)


def cached_decision(ctx, sid):
    plan, states, _ = api.make_plan(ctx.pipeline, ctx.store)
    d = plan.by_step()[sid]
    assert d.action == "cached", d
    return d, states


def test_restore_puts_a_deleted_output_back_from_the_store(ctx):
    root = ctx.root
    run_planned(ctx, "a")
    with open(os.path.join(root, "build/a.json")) as f:
        original = f.read()
    os.remove(os.path.join(root, "build/a.json"))
    d, states = cached_decision(ctx, "a")
    assert d.restore == ("build/a.json",)
    states.memo["build/a.json"] = (0, 0, 0, "stale")
    assert restore(ctx, states, d) == ()
    with open(os.path.join(root, "build/a.json")) as f:
        assert f.read() == original
    assert "build/a.json" not in states.memo  # hashed again when next asked


def test_restore_puts_back_an_edited_output(ctx):
    run_planned(ctx, "two")
    _write(ctx.root, "build/y.txt", "edited\n")
    d, states = cached_decision(ctx, "two")
    assert d.restore == ("build/y.txt",)
    assert restore(ctx, states, d) == ()
    with open(os.path.join(ctx.root, "build/y.txt")) as f:
        assert f.read() == "y\n"


def test_restore_of_a_directory_removes_files_the_step_did_not_produce(ctx):
    root = ctx.root
    run_planned(ctx, "d")
    os.remove(os.path.join(root, "out/d/x.txt"))
    _write(root, "out/d/stray.txt", "not the step's")
    d, states = cached_decision(ctx, "d")
    assert d.restore == ("out/d/",)
    assert restore(ctx, states, d) == ()
    found = sorted(os.path.relpath(os.path.join(dp, n), root) for dp, _, ns in os.walk(root + "/out")
                   for n in ns)
    assert found == ["out/d/sub/y.txt", "out/d/x.txt"]


def test_restore_says_output_lost_when_an_object_is_missing_and_restores_nothing(ctx):
    record = run_planned(ctx, "two")
    for name in ("x", "y"):
        os.remove(os.path.join(ctx.root, f"build/{name}.txt"))
    ctx.store.objects.remove(record.outputs["build/y.txt"])
    d, states = cached_decision(ctx, "two")
    assert d.restore == ("build/x.txt", "build/y.txt")
    assert restore(ctx, states, d) == (Reason("output_lost", "build/y.txt"),)
    # Every object is checked before any is restored: x, whose object is there, stays absent.
    assert not os.path.exists(os.path.join(ctx.root, "build/x.txt"))


def test_restore_says_output_lost_when_a_file_of_a_tree_is_missing(ctx):
    record = run_planned(ctx, "d")
    shutil.rmtree(os.path.join(ctx.root, "out"))
    tree = ctx.store.objects.read_tree(record.outputs["out/d/"])
    ctx.store.objects.remove(tree["x.txt"])
    d, states = cached_decision(ctx, "d")
    assert restore(ctx, states, d) == (Reason("output_lost", "out/d/"),)
    assert not os.path.exists(os.path.join(ctx.root, "out"))


def test_restore_with_nothing_to_restore_misses_nothing(proj, ctx):
    _, _, states = proj
    d = Decision("a", "cached", (), "k", {}, {"build/a.json": "0" * 64}, ())
    assert restore(ctx, states, d) == ()


# -- RunContext.template_values ------------------------------------------------------------

def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


REFS = """\
    amelia: 1
    name: refs
    params:
      goal: {type: string, default: "ship it"}
      n: {type: integer, default: 3}
    steps:
      a:
        run: "true"
        output: build/a.json
      b:
        run: >-
          echo "${{ params.goal }} ${{ params.n }} ${{ steps.a.output }} ${{ steps.a.json.title }}
          ${{ steps.a.json.n }} ${{ steps.a.json.n.x }}"
        output: build/b.txt
      nofield:
        run: echo "${{ steps.a.json.nope }}"
    """


@pytest.fixture
def refs(tmp_path):
    with run_context(tmp_path, REFS) as c:
        yield c


def test_template_values_are_params_and_upstream_outputs_by_env_var(refs):
    _write(refs.root, "build/a.json", '{"title": "T; rm -rf /", "n": {"x": [1, 2]}, "items": ["p", "q"]}\n')
    values = refs.template_values(refs.pipeline.step("b"))
    assert values == {
        "AMELIA_PARAM_GOAL": "ship it",
        "AMELIA_PARAM_N": "3",
        "AMELIA_STEP_A_OUTPUT": '{"title": "T; rm -rf /", "n": {"x": [1, 2]}, "items": ["p", "q"]}\n',
        "AMELIA_STEP_A_JSON_TITLE": "T; rm -rf /",  # a string field: its text, unquoted
        "AMELIA_STEP_A_JSON_N": '{"x": [1, 2]}',  # anything else: its JSON
        "AMELIA_STEP_A_JSON_N_X": "[1, 2]",
    }


def with_refs(step, *refs):
    """The step reading exactly these references (the env names need not be real ones)."""
    return dataclasses.replace(step, vars=tuple(TemplateVar(r, f"V{i}", r.split(".")[1], tuple(r.split(".")[2:]))
                                                for i, r in enumerate(refs)), static_vars={})


def test_a_list_in_a_json_output_is_indexed_by_number(refs):
    # The template grammar has no numeric segments (`steps.a.json.items.0` is "not a
    # reference"), so this part of the runner is reached with a hand-made reference only.
    _write(refs.root, "build/a.json", '{"items": ["p", {"q": true}]}')
    step = with_refs(refs.pipeline.step("b"), "steps.a.json.items.0", "steps.a.json.items.1.q")
    assert refs.template_values(step) == {"V0": "p", "V1": "true"}


def test_a_missing_json_field_or_index_is_a_step_error(refs):
    _write(refs.root, "build/a.json", '{"items": ["p"]}')
    with pytest.raises(StepError) as e:
        refs.template_values(refs.pipeline.step("nofield"))
    assert e.value.message == "'steps.a.json.nope': build/a.json has no field 'nope'"
    with pytest.raises(StepError) as e:
        refs.template_values(with_refs(refs.pipeline.step("b"), "steps.a.json.items.5"))
    assert e.value.message == "'steps.a.json.items.5': build/a.json has no field '5'"


def test_an_upstream_output_that_is_not_json_is_a_step_error(refs):
    _write(refs.root, "build/a.json", "not json")
    with pytest.raises(StepError) as e:
        refs.template_values(refs.pipeline.step("nofield"))
    assert e.value.message == "'steps.a.json.nope': build/a.json is not JSON"


def test_an_unreadable_upstream_output_is_a_step_error(refs):
    with pytest.raises(StepError) as e:
        refs.template_values(refs.pipeline.step("b"))
    assert e.value.message == "cannot read build/a.json for 'steps.a.output': No such file or directory"


def test_a_value_over_100_kib_is_a_step_error_with_a_hint(refs):
    _write(refs.root, "build/a.json", "x" * (MAX_ENV_VALUE + 1))
    with pytest.raises(StepError) as e:
        refs.template_values(refs.pipeline.step("b"))
    assert e.value.message == "'steps.a.output' is larger than 100 KiB"
    assert e.value.hint == "read the file build/a.json in the command instead"


def test_a_value_of_exactly_100_kib_is_allowed_and_no_limit_reads_it_all(refs):
    step = with_refs(refs.pipeline.step("b"), "steps.a.output")
    _write(refs.root, "build/a.json", "x" * MAX_ENV_VALUE)
    assert len(refs.template_values(step)["V0"]) == MAX_ENV_VALUE
    _write(refs.root, "build/a.json", "x" * (MAX_ENV_VALUE * 3))
    assert len(refs.template_values(step, limit=None)["V0"]) == MAX_ENV_VALUE * 3  # prompts


def test_a_json_field_just_under_the_limit_is_read(refs):
    _write(refs.root, "build/a.json", json.dumps({"nope": "x" * (MAX_ENV_VALUE - 20)}))
    value = refs.template_values(refs.pipeline.step("nofield"))["AMELIA_STEP_A_JSON_NOPE"]
    assert len(value) == MAX_ENV_VALUE - 20


def test_a_small_field_of_a_large_json_output_can_be_read(refs):
    _write(refs.root, "build/a.json", json.dumps({"nope": "small", "pad": "x" * (MAX_ENV_VALUE + 10)}))
    assert refs.template_values(refs.pipeline.step("nofield"))["AMELIA_STEP_A_JSON_NOPE"] == "small"


def test_a_json_field_over_100_kib_gets_the_size_error(refs):
    _write(refs.root, "build/a.json", json.dumps({"nope": "x" * (MAX_ENV_VALUE + 1)}))
    with pytest.raises(StepError, match="is larger than 100 KiB"):
        refs.template_values(refs.pipeline.step("nofield"))
