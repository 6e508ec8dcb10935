"""amelia.scheduler in process: a fake step kind whose steps finish when the test says so.

No sleeps decide an outcome: steps wait on events, and the log of starts and ends is
checked for order (a long step beside a short chain, a join, cancellation, failures).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

import fakes.fake_kind as fake
from amelia import events as ev
from amelia import planner, steps
from amelia.fingerprint import FileStates, Fingerprint
from amelia.scheduler import Lifecycle, Scheduler
from amelia.spec import Pipeline, Step, canonical_json
from amelia.store import Record, Store


@pytest.fixture(autouse=True)
def fake_kind(monkeypatch):
    monkeypatch.setitem(steps.KINDS, "fake", steps.Kind("fake", "fakes.fake_kind", (), (), calls_models=True))
    fake.reset()
    fake.MODEL = None
    yield
    for sid in list(fake._gates):
        fake.release(sid)


def mkstep(sid, needs=(), mode="ok") -> Step:
    return Step(id=sid, kind="fake", definition=canonical_json({"fake": mode, "id": sid}),
                needs=tuple(needs), config={"fake": mode})


def run(tmp_path, *step_list, jobs=4, control=None, clock=None, history=None):
    """Plan and run the steps; `control(scheduler)` runs on a thread beside the run."""
    pipeline = Pipeline(name="t", file="amelia.yaml", root=str(tmp_path), digest="d", params={},
                        env_names=(), steps=tuple(step_list))
    store = Store(str(tmp_path))
    for sid, seconds in (history or {}).items():  # what earlier runs recorded
        store.records.save(Record(f"old-{sid}", sid, {}, {}, "run-0", seconds))
    fps = {s.id: Fingerprint() for s in step_list}
    plan = planner.plan(pipeline, fps, {})
    events = []
    bus = ev.Bus()
    bus.subscribe(events.append)
    extra = {"clock": clock} if clock else {}
    sched = Scheduler(pipeline, plan, store, FileStates(str(tmp_path), {}), bus, "run-1", jobs, **extra)
    helper = None
    if control:
        helper = threading.Thread(target=control, args=(sched,), daemon=True)
        helper.start()
    result = sched.run()
    if helper:
        helper.join(10)
    store.close()
    return result, events


def test_a_short_chain_does_not_wait_for_an_unrelated_long_step(tmp_path):
    def control(sched):
        assert fake.started("long")
        # The chain a → b → c finishes while `long` is still running...
        for _ in range(1000):
            if ("end", "c") in fake.LOG:
                break
            threading.Event().wait(0.005)
        assert ("end", "long") not in fake.LOG
        fake.release("long")

    result, _ = run(tmp_path, mkstep("long", mode="wait"), mkstep("a"), mkstep("b", ["a"]),
                    mkstep("c", ["b"]), control=control)
    assert result["status"] == "ok"
    assert fake.LOG.index(("end", "c")) < fake.LOG.index(("end", "long"))
    assert result["counts"]["ran"] == 4


def test_a_join_runs_once_after_all_its_needs(tmp_path):
    def control(sched):
        assert fake.started("slow")
        fake.release("slow")

    result, _ = run(tmp_path, mkstep("fast"), mkstep("slow", mode="wait"),
                    mkstep("join", ["fast", "slow"]), control=control)
    assert fake.LOG.count(("start", "join")) == 1
    assert fake.LOG.index(("start", "join")) > fake.LOG.index(("end", "slow"))
    assert fake.LOG.index(("start", "join")) > fake.LOG.index(("end", "fast"))
    assert result["statuses"]["join"] == "ran"


def test_jobs_bound_how_many_run_at_once(tmp_path):
    result, _ = run(tmp_path, *[mkstep(f"s{i}") for i in range(6)], jobs=1)
    assert fake.RUNNING["most"] == 1 and result["counts"]["ran"] == 6


def test_per_model_concurrency_bounds_steps_of_that_model(tmp_path):
    from amelia.model_config import ModelConfig

    fake.MODEL = ModelConfig(name="m", provider="openai", model="x", concurrency=1)

    def control(sched):
        assert fake.started("s0") or fake.started("s1")
        threading.Event().wait(0.05)
        fake.release("s0")
        fake.release("s1")

    run(tmp_path, mkstep("s0", mode="wait"), mkstep("s1", mode="wait"), jobs=2, control=control)
    assert fake.RUNNING["most"] == 1


def test_a_failure_stops_its_dependents_and_not_the_other_branches(tmp_path):
    result, events = run(tmp_path, mkstep("bad", mode="fail"), mkstep("after", ["bad"]),
                         mkstep("after2", ["after"]), mkstep("other"), mkstep("other2", ["other"]))
    st = result["statuses"]
    assert result["status"] == "failed"
    assert st["bad"] == "failed" and st["after"] == "skipped" and st["after2"] == "skipped"
    assert st["other"] == "ran" and st["other2"] == "ran"
    skipped = {e.step: e.reason for e in events if isinstance(e, ev.StepSkipped)}
    assert skipped == {"after": "upstream bad failed", "after2": "upstream after did not run"}


def test_cancelling_one_step_skips_its_dependents_only(tmp_path):
    def control(sched):
        assert fake.started("hang")
        sched.cancel("hang")

    result, events = run(tmp_path, mkstep("hang", mode="hang"), mkstep("after", ["hang"]),
                         mkstep("other"), control=control)
    st = result["statuses"]
    assert st["hang"] == "cancelled" and st["after"] == "skipped" and st["other"] == "ran"
    assert result["status"] == "cancelled"
    assert any(isinstance(e, ev.StepCancelled) and e.step == "hang" for e in events)


def test_cancelling_a_step_before_it_starts(tmp_path):
    def control(sched):
        assert fake.started("first")
        sched.cancel("second")
        fake.release("first")

    result, _ = run(tmp_path, mkstep("first", mode="wait"), mkstep("second", ["first"]), control=control)
    assert result["statuses"]["second"] == "cancelled"
    assert ("start", "second") not in fake.LOG


def test_interrupt_stops_running_steps_and_starts_no_more(tmp_path):
    def control(sched):
        assert fake.started("hang")
        sched.interrupt(signal.SIGINT)

    result, events = run(tmp_path, mkstep("hang", mode="hang"), mkstep("after", ["hang"]), jobs=1,
                         control=control)
    assert result["status"] == "interrupted" and result["signal"] == signal.SIGINT
    assert result["statuses"]["hang"] == "cancelled"
    assert ("start", "after") not in fake.LOG
    assert isinstance(events[-1], ev.RunFinished) and events[-1].status == "interrupted"


def test_lifecycle_refuses_illegal_moves():
    life = Lifecycle(["a"])
    life.move("a", "ready")
    life.move("a", "running")
    life.move("a", "ran")
    with pytest.raises(RuntimeError, match="ran -> running"):
        life.move("a", "running")
    with pytest.raises(RuntimeError):
        Lifecycle(["b"]).move("b", "ran")  # a step that never ran cannot have run


def test_after_an_interrupt_a_step_that_ignores_it_is_abandoned_at_the_deadline(tmp_path, monkeypatch):
    """A kind that may block in a call (stops_on_cancel=False) is given up on: the injected
    clock jumps past the deadline, the loop stops waiting, and the step's watcher returns
    after the grace while the call itself is still blocked."""
    monkeypatch.setitem(steps.KINDS, "fake", steps.Kind("fake", "fakes.fake_kind", (), (),
                                                        stops_on_cancel=False, calls_models=True))
    now = [100.0]

    def control(sched):
        assert fake.started("deaf")
        sched.interrupt(signal.SIGTERM)
        now[0] += 60  # long past the grace, without waiting for it

    result, events = run(tmp_path, mkstep("deaf", mode="deaf"), mkstep("after", ["deaf"]),
                         control=control, clock=lambda: now[0])
    assert ("end", "deaf") not in fake.LOG  # the call never returned...
    assert result["status"] == "interrupted" and result["signal"] == signal.SIGTERM
    assert result["statuses"]["deaf"] == "cancelled"  # ...and the run did not wait for it
    fake.release("deaf")
    assert not any(isinstance(e, ev.StepStarted) and e.step == "after" for e in events)


def test_a_failure_at_the_head_of_a_long_chain_skips_it_without_recursion(tmp_path):
    n = 3000  # deeper than Python's recursion limit
    chain = [mkstep("s0", mode="fail")] + [mkstep(f"s{i}", [f"s{i - 1}"]) for i in range(1, n)]
    result, events = run(tmp_path, *chain)
    assert result["counts"]["failed"] == 1 and result["counts"]["skipped"] == n - 1
    assert ("start", "s1") not in fake.LOG


def test_with_one_slot_the_step_that_took_longest_last_time_goes_first(tmp_path):
    steps_ = [mkstep("a0"), mkstep("a1", ["a0"]), mkstep("b0"), mkstep("slow")]
    run(tmp_path, *steps_, jobs=1, history={"a0": 0.1, "a1": 0.1, "b0": 0.1, "slow": 30.0})
    assert [sid for what, sid in fake.LOG if what == "start"][0] == "slow"


def test_without_history_the_longest_chain_goes_first(tmp_path):
    run(tmp_path, mkstep("slow"), mkstep("a0"), mkstep("a1", ["a0"]), jobs=1)
    assert [sid for what, sid in fake.LOG if what == "start"] == ["a0", "slow", "a1"]  # then file order


# -- files changing under a run (watch) ---------------------------------------------------

def inputs_step(sid, inputs, needs=(), mode="ok") -> Step:
    return Step(id=sid, kind="fake", definition=canonical_json({"fake": mode, "id": sid}),
                needs=tuple(needs), inputs=tuple(inputs), config={"fake": mode})


def starts(sid) -> int:
    return fake.LOG.count(("start", sid))


def wait_for(cond, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_a_running_step_whose_input_changes_starts_over_and_only_it(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("b")

    def control(sched):
        assert fake.started("long") and fake.started("other")
        (tmp_path / "a.txt").write_text("two")
        sched.changed(["a.txt"])
        assert wait_for(lambda: starts("long") == 2)
        fake.release("long")
        fake.release("other")

    result, events = run(tmp_path, inputs_step("long", ["a.txt"], mode="wait"),
                         inputs_step("other", ["b.txt"], mode="wait"), control=control)
    assert result["status"] == "ok" and result["counts"]["ran"] == 2 and result["again"] is False
    assert starts("long") == 2 and starts("other") == 1
    stopped = [e for e in events if isinstance(e, ev.StepCancelled)]
    assert [(e.step, e.reason) for e in stopped] == [("long", "input a.txt changed")]


def test_a_step_not_started_yet_is_decided_again_and_a_finished_one_asks_for_another_run(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "c.txt").write_text("c")

    def control(sched):
        assert fake.started("gate")
        assert wait_for(lambda: ("end", "done") in fake.LOG)
        (tmp_path / "c.txt").write_text("changed")
        sched.changed(["c.txt", "a.txt"])  # `later` waits on `gate`; `done` has finished
        time.sleep(0.4)  # the loop takes the change (it polls every 0.25 s)
        fake.release("gate")

    result, events = run(tmp_path, inputs_step("done", ["a.txt"]), inputs_step("gate", [], mode="wait"),
                         inputs_step("later", ["c.txt"], needs=["gate"]), control=control)
    assert result["status"] == "ok" and result["again"] is True  # `done` read a.txt before it changed
    assert starts("later") == 1 and starts("done") == 1


def test_a_change_no_step_reads_changes_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("one")

    def control(sched):
        assert fake.started("long")
        sched.changed(["unrelated.txt", ".amelia/x"])
        time.sleep(0.4)
        fake.release("long")

    result, events = run(tmp_path, inputs_step("long", ["a.txt"], mode="wait"), control=control)
    assert result["again"] is False and starts("long") == 1
    assert not [e for e in events if isinstance(e, ev.StepCancelled)]
