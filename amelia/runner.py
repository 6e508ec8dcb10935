"""Carries out a plan: restores cached outputs, runs the rest through LangGraph, records.

Side effects live here. A step's record is written only after it succeeded and its
outputs are stored as objects; a failed step stops its dependents while other
branches finish.
"""

from __future__ import annotations

import json
import os
import threading
import time

from . import events as ev
from . import planner
from .fingerprint import fingerprint
from .planner import BLOCKED, CACHED, ERROR, RUN, Decision
from .steps import StepError, implementation

MAX_ENV_VALUE = 100 * 1024  # Linux caps one environment string at 128 KiB


class RunContext:
    """What a step kind may use while it executes."""

    def __init__(self, pipeline, store, run_id: str, bus=None, jobs: int = 1):
        self.pipeline = pipeline
        self.root = pipeline.root
        self.store = store
        self.run_id = run_id
        self.bus = bus
        self.jobs = jobs
        self._procs = set()
        self._lock = threading.Lock()
        self.logs = store.logs_dir(run_id)
        self._llm = None

    @property
    def llm(self):
        """The run's ModelSession, made on first use (agent steps only)."""
        with self._lock:
            if self._llm is None:
                from .llm import ModelSession

                self._llm = ModelSession(self.root, self._emit_usage, self.jobs)
            return self._llm

    def _emit_usage(self, step_id, config, completion, retries, latency, cost) -> None:
        u = completion.usage
        self.bus.emit(ev.ModelCalled(self.run_id, step_id, config.provider,
                                     completion.model or config.model, u.input_tokens,
                                     u.output_tokens, u.cached_tokens, u.cache_write_tokens,
                                     latency, retries, cost))

    def progress(self, step_id: str, message: str) -> None:
        if self.bus is not None:
            self.bus.emit(ev.StepProgress(self.run_id, step_id, message))

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()

    def log_path(self, step) -> str:
        return os.path.join(self.logs, f"{step.id}.log")

    def track(self, proc) -> None:
        with self._lock:
            self._procs.add(proc)

    def untrack(self, proc) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        import signal

        with self._lock:
            procs = list(self._procs)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def template_values(self, step, limit: int | None = MAX_ENV_VALUE) -> dict:
        """Values of the step's ${{ }} references, by the environment variable that carries them.

        limit: the most one value may hold (commands get them as environment variables,
        which Linux caps); None for prompts.
        """
        out = dict(step.config.get("static_vars", {}))
        by_id = self.pipeline.by_id()
        for var in step.vars:
            parts = var.ref.split(".")
            if parts[0] != "steps":
                continue
            path = by_id[parts[1]].outputs[0]
            full = os.path.join(self.root, path)
            try:
                with open(full, encoding="utf-8", errors="replace") as f:
                    text = f.read() if limit is None else f.read(limit + 1)
            except OSError as e:
                raise StepError(f"cannot read {path} for '{var.ref}': {e.strerror}") from None
            if parts[2] == "json":
                text = _json_field(text, parts[3:], var.ref, path)
            if limit is not None and len(text) > limit:
                raise StepError(f"'{var.ref}' is larger than {MAX_ENV_VALUE // 1024} KiB",
                                hint=f"read the file {path} in the command instead")
            out[var.env] = text
        return out


def _json_field(text: str, fields: list, ref: str, path: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        raise StepError(f"'{ref}': {path} is not JSON") from None
    for f in fields:
        if isinstance(value, dict) and f in value:
            value = value[f]
        elif isinstance(value, list) and f.isdigit() and int(f) < len(value):
            value = value[int(f)]
        else:
            raise StepError(f"'{ref}': {path} has no field '{f}'")
    return value if isinstance(value, str) else json.dumps(value)


class Runner:
    def __init__(self, pipeline, plan, store, states, bus, run_id: str, jobs: int,
                 force: frozenset, force_all: bool):
        self.pipeline = pipeline
        self.by_id = pipeline.by_id()
        self.plan = plan
        self.store = store
        self.states = states
        self.bus = bus
        self.run_id = run_id
        self.jobs = jobs
        self.force = force
        self.force_all = force_all
        self.ctx = RunContext(pipeline, store, run_id, bus, jobs)
        self.decisions = plan.by_step()
        self.known: dict = {}  # step → output hashes, for cached and finished steps
        self.statuses: dict = {}  # step → cached | ran | failed | skipped
        self.rerun: set = set()  # cached in the plan, but their outputs could not be restored

    # -- the whole run ---------------------------------------------------------------
    def run(self) -> dict:
        started = time.time()
        self.bus.emit(ev.RunStarted(self.run_id, self.pipeline.name, self.pipeline.file,
                                    tuple((d.step, d.action, d.reasons) for d in self.plan.decisions),
                                    self.jobs))
        status = "ok"
        try:
            self._restore_cached()
            todo = [d.step for d in self.plan.decisions if d.action != CACHED or d.step in self.rerun]
            if todo:
                self._run_graph(todo)
            if any(s == "failed" for s in self.statuses.values()):
                status = "failed"
        except KeyboardInterrupt:
            self.ctx.kill_all()
            status = "interrupted"
        finally:
            self.ctx.close()
        counts = {k: 0 for k in ("ran", "cached", "failed", "skipped")}
        for s in self.statuses.values():
            counts[s] = counts.get(s, 0) + 1
        self.bus.emit(ev.RunFinished(self.run_id, status, counts, time.time() - started))
        return {"status": status, "counts": counts, "statuses": dict(self.statuses)}

    def _restore_cached(self) -> None:
        for d in self.plan.decisions:
            if d.action != CACHED:
                continue
            if any(self.rerun.intersection(self.by_id[d.step].needs)):
                self.rerun.add(d.step)  # its upstream lost its outputs: decide after it
                self.decisions[d.step] = Decision(d.step, BLOCKED, ("after upstream",))
                continue
            if self._restore(d):
                self.known[d.step] = d.outputs
                self.statuses[d.step] = "cached"
                self.bus.emit(ev.StepCached(self.run_id, d.step, d.reasons, d.key))
            else:
                self.rerun.add(d.step)
                self.decisions[d.step] = Decision(
                    d.step, RUN, ("outputs are missing and not in the store",), d.key, d.material)

    def _restore(self, d: Decision) -> bool:
        objects = self.store.objects
        if not all(objects.can_restore(d.outputs[p]) for p in d.restore):
            return False
        for p in d.restore:
            objects.restore(d.outputs[p], os.path.join(self.pipeline.root, p.rstrip("/")))
            self.states.forget(p.rstrip("/"))
        return True

    def _run_graph(self, todo: list) -> None:
        from .compiler import compile_graph

        needs = {sid: self.by_id[sid].needs for sid in todo}
        app = compile_graph(todo, needs, self._node)
        config = {"max_concurrency": self.jobs, "recursion_limit": len(todo) + 10}
        app.invoke({"results": {}}, config=config)

    # -- one step --------------------------------------------------------------------
    def _node(self, sid: str):
        def node(state):
            try:
                return {"results": {sid: self._step(sid)}}
            except Exception as e:  # a bug in a step kind must not take the others down
                import traceback

                self._fail(sid, f"internal error: {type(e).__name__}: {e}", 0.0,
                           tail=traceback.format_exc(limit=5))
                return {"results": {sid: {"status": "failed"}}}

        return node

    def _step(self, sid: str) -> dict:
        step = self.by_id[sid]
        bad = [d for d in step.needs if self.statuses.get(d) in ("failed", "skipped")]
        if bad:
            reason = f"upstream {bad[0]} {'failed' if self.statuses[bad[0]] == 'failed' else 'did not run'}"
            self.statuses[sid] = "skipped"
            self.bus.emit(ev.StepSkipped(self.run_id, sid, reason))
            return {"status": "skipped"}
        d = self.decisions[sid]
        if d.action == BLOCKED:
            fp = fingerprint(step, self.states, self.pipeline)
            d = planner.decide(self.pipeline, step, fp, self.known,
                               self.store.state.record_heads([sid]),
                               self.force_all or sid in self.force)
            if d.action == CACHED:
                reasons = ("upstream re-ran; its outputs are unchanged",) + d.reasons
                d = Decision(sid, CACHED, reasons, d.key, d.material, d.outputs, d.restore)
                if self._restore(d):
                    self.known[sid] = d.outputs
                    self.statuses[sid] = "cached"
                    self.bus.emit(ev.StepCached(self.run_id, sid, d.reasons, d.key))
                    return {"status": "cached"}
                d = Decision(sid, RUN, ("outputs are missing and not in the store",), d.key, d.material)
        if d.action == ERROR:
            self._fail(sid, "; ".join(d.reasons), 0.0)
            return {"status": "failed"}
        reasons = d.reasons or planner.explain(d.material, self.store.state.latest_detail(sid))
        self.bus.emit(ev.StepStarted(self.run_id, sid, reasons))
        started = time.monotonic()
        try:
            implementation(step.kind).execute(step, self.ctx)
            outputs = self._collect_outputs(step)
        except StepError as e:
            msg = e.message + (f" (hint: {e.hint})" if e.hint else "")
            self._fail(sid, msg, time.monotonic() - started, e.exit_code, e.tail)
            return {"status": "failed"}
        duration = time.monotonic() - started
        self.store.state.save_record(d.key, sid, outputs, d.material, self.run_id, duration)
        self.known[sid] = outputs
        self.statuses[sid] = "ran"
        self.bus.emit(ev.StepCompleted(self.run_id, sid, duration, outputs, d.key))
        return {"status": "ran"}

    def _collect_outputs(self, step) -> dict:
        """Hash the step's outputs into the object store; all must exist."""
        outputs = {}
        for o in step.outputs:
            rel = o.rstrip("/")
            full = os.path.join(self.pipeline.root, rel)
            if o.endswith("/"):
                if not os.path.isdir(full):
                    raise StepError(f"declared output directory {o} was not created")
                outputs[o] = self.store.objects.put_tree(full)
            else:
                if not os.path.isfile(full):
                    raise StepError(f"declared output {o} was not created",
                                    hint="the command must write it, relative to the project root")
                outputs[o] = self.store.objects.put_file(full)
            self.states.forget(rel)
        return outputs

    def _fail(self, sid: str, error: str, duration: float, exit_code=None, tail: str = "") -> None:
        self.statuses[sid] = "failed"
        log = self.ctx.log_path(self.by_id[sid])
        rel_log = os.path.relpath(log, self.pipeline.root) if os.path.exists(log) else ""
        self.bus.emit(ev.StepFailed(self.run_id, sid, error, duration, exit_code, rel_log, tail))
