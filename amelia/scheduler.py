"""Critical-path scheduling on LangGraph's functional API.

An `@entrypoint` runs the dispatch loop; each step that runs is one `@task`. A step is
dispatched as soon as its own dependencies are done (as make -j and ninja do), bounded
by --jobs and by each model's concurrency; among ready steps the one on the longest path
to the end goes first (weighed by recorded durations). When a step becomes ready, `planner.decide` is called
for it with its upstream outputs known (the plan's decision is reused when nothing
upstream ran). Every step moves through one state machine, `Lifecycle`.

Stopping: `interrupt` (SIGINT/SIGTERM) cancels every running step (its process group
gets SIGTERM, then SIGKILL after the grace) and dispatches nothing more; `cancel(step)`
stops one step, for `watch`. Both may be called from a signal handler or another thread.

Files changing under a run (`changed(paths)`, for `watch`): a running step that reads one
is stopped and started again with the new content; one not started yet is decided again
when it is; a finished one (and what runs downstream of it) makes the run say `again`.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait

from . import events as ev
from . import planner
from .fingerprint import discovered_paths, fingerprint
from .paths import is_glob, matches
from .planner import BLOCKED, CACHED, ERROR, RUN, Decision
from .processes import GRACE, CancelToken
from .reasons import Reason, word
from .runner import Outcome, RunContext, execute, restore
from .steps import StepError

PENDING, WAITING, READY, RUNNING = "pending", "blocked", "ready", "running"
RAN, FAILED, SKIPPED, DONE_CACHED, CANCELLED = "ran", "failed", "skipped", "cached", "cancelled"
TERMINAL = (RAN, FAILED, SKIPPED, DONE_CACHED, CANCELLED)
TRANSITIONS = {
    PENDING: {WAITING, READY, DONE_CACHED, SKIPPED, FAILED, CANCELLED},
    WAITING: {READY, DONE_CACHED, SKIPPED, FAILED, CANCELLED},
    READY: {RUNNING, CANCELLED, WAITING},  # back to waiting: its inputs changed, decide again
    RUNNING: {RAN, FAILED, CANCELLED, WAITING},  # waiting again: stopped to start over (watch)
}
POLL = 0.25  # seconds between checks for timeouts' and cancellations' SIGKILLs
ABANDON = GRACE + 0.5  # after an interrupt, stop waiting for steps after this long


def _fixed_inputs(step, fp) -> bool:
    """Every input names one file the fingerprint holds: what an upstream run writes
    cannot change which files the step reads (their hashes come from the upstream)."""
    return all(p in fp.inputs and not is_glob(p) for p in step.inputs)


class Lifecycle:
    """Each step's state: pending → blocked → ready → running → ran | failed | cancelled,
    or straight to cached | skipped | failed (an error found before it ran)."""

    def __init__(self, step_ids):
        self.state = dict.fromkeys(step_ids, PENDING)

    def move(self, sid: str, to: str) -> None:
        now = self.state[sid]
        if to not in TRANSITIONS.get(now, ()):
            raise RuntimeError(f"step {sid}: {now} -> {to} is not a legal move")
        self.state[sid] = to

    def __getitem__(self, sid: str) -> str:
        return self.state[sid]

    def counts(self) -> dict:
        out = {k: 0 for k in ("ran", "cached", "failed", "skipped")}
        for s in self.state.values():
            if s in TERMINAL:
                out[s] = out.get(s, 0) + 1
        return out


class Scheduler:
    def __init__(self, pipeline, plan, store, states, bus, run_id: str, jobs: int,
                 force: frozenset = frozenset(), force_all: bool = False, previous=None,
                 clock=time.monotonic):
        self.pipeline = pipeline
        self.by_id = pipeline.by_id()
        self.store = store
        self.states = states
        self.bus = bus
        self.run_id = run_id
        self.jobs = max(1, jobs)
        self.force, self.force_all = force, force_all
        self.previous = previous
        self.clock = clock  # for the interrupt's deadline; tests pass a fake one
        self.plan = plan
        self.decisions = plan.by_step()
        self.order = [d.step for d in plan.decisions]  # topological
        self.ctx = RunContext(pipeline, store, run_id, bus, self.jobs, states)
        self.life = Lifecycle(self.order)
        chosen = set(self.order)
        self.dependents: dict = {sid: [] for sid in self.order}
        self.unfinished: dict = {}  # step → needs not yet finished
        for sid in self.order:
            needs = [n for n in self.by_id[sid].needs if n in chosen]
            self.unfinished[sid] = len(needs)
            for n in needs:
                self.dependents[n].append(sid)
        self.priority = self._critical_path()
        self.position = {sid: i for i, sid in enumerate(self.order)}
        self.cancelled: set = set()  # steps asked to stop before they started
        self.known: dict = {}  # step → output hashes (cached or ran in this run)
        self.ran: set = set()
        self.ready: list = []  # heap of (-priority, position, step)
        self.tokens: dict = {}
        self.slots_used: dict = {}  # model limit key → steps running on it
        self.slots_of: dict = {}  # step → its (limit key, capacity) pairs
        self.requests: deque = deque()  # steps to cancel, from other threads
        self.interrupted = 0  # the signal that stops the run, or 0
        self.deadline = 0.0
        self.changes: deque = deque()  # batches of changed paths, from the watcher's thread
        self.restarts: dict = {}  # running step → why it is stopped to start over
        self.again = False  # a step finished before its inputs changed: run once more
        self.wake = Future()  # done when another thread has asked for something: the loop looks now
        self.push = False  # `amelia run --push`: push a target's commit to its `push:` remote
        self.committed: dict = {}  # target → the steps whose files it has committed this run
        self.commit_failed = False
        self._commit_lock = threading.Lock()
        # A `git:` step's call: a commit that fails fails the step too (no tag on the old head).
        self.ctx.commit_target = lambda name: self.commit_target(name, strict=True)

    def _critical_path(self) -> dict:
        """Steps on the longest path to the end first (ninja's critical-path order). A path
        is weighed by how long its steps last took (their records say), a step with no
        record by the median of those that have one; with no history at all, by the number
        of steps on it."""
        took = self.store.records.durations(self.order) if self.order else {}
        known = sorted(took.values())
        typical = known[len(known) // 2] if known else 1.0
        out: dict = {}
        for sid in reversed(self.order):
            out[sid] = took.get(sid, typical) + max((out[d] for d in self.dependents[sid]), default=0)
        return out

    # -- control, from signal handlers and other threads ---------------------------------
    def interrupt(self, signum: int) -> None:
        if self.interrupted:  # a second Ctrl-C: no more grace
            self.ctx.processes.kill_all()
            self.deadline = self.clock()
            return
        self.interrupted = signum
        self.deadline = self.clock() + ABANDON
        for token in list(self.tokens.values()):
            token.cancel("interrupted")

    def cancel(self, step_id: str, reason: str = "cancelled") -> None:
        """Stop one step (running or waiting to run); its dependents are skipped."""
        self.requests.append((step_id, reason))
        self._poke()
        token = self.tokens.get(step_id)
        if token is not None:
            token.cancel(reason)

    def changed(self, paths) -> None:
        """Files changed on disk (project-relative paths): what reads them starts over."""
        self.changes.append(tuple(paths))
        self._poke()

    def _poke(self) -> None:
        try:
            self.wake.set_result(None)
        except InvalidStateError:  # poked already, not looked at yet
            pass

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.time()
        self.bus.emit(ev.RunStarted(self.run_id, self.pipeline.name, self.pipeline.file,
                                    tuple((d.step, d.action, d.reasons) for d in self.plan.decisions),
                                    self.jobs))
        if any(self.by_id[sid].target for sid in self.order):  # until the commits are made
            from .targets import pending_marker

            marker = pending_marker(self.pipeline.root)
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "a").close()
        try:
            if any(d.action != CACHED for d in self.plan.decisions):
                self._on_langgraph(start=True)
            else:  # restores only: no LangGraph, unless an output cannot be restored
                self._loop(None, start=True)
                if self.ready:
                    self._on_langgraph(start=False)
        finally:
            self.ctx.close()
        for t in self.pipeline.targets:  # one commit per target per run, of what is done
            self.commit_target(t.name)
        if self.pipeline.targets and not self.commit_failed:
            from .targets import pending_marker

            try:
                os.unlink(pending_marker(self.pipeline.root))
            except FileNotFoundError:
                pass
        counts = self.life.counts()
        status = ("interrupted" if self.interrupted
                  else "failed" if counts["failed"] or self.ctx.commit.error is not None or self.commit_failed
                  else "cancelled" if counts.get("cancelled") else "ok")
        self.bus.emit(ev.RunFinished(self.run_id, status, counts, time.time() - started))
        return {"status": status, "counts": counts, "statuses": dict(self.life.state),
                "signal": self.interrupted, "record_error": self.ctx.commit.error,
                "again": self.again or bool(self.changes)}

    def commit_target(self, name: str, strict: bool = False) -> str | None:
        """Commit the files of the target's steps done so far in this run (ran or cached),
        once: the sha, or None when nothing changed or nothing is done. Called at the run's
        end, and by a `git:` step (ctx.commit_target) so a tag lands on the run's commit;
        strict: a GitProblem is raised (after its event) instead of only failing the run."""
        with self._commit_lock:
            done = [sid for sid in self.order if self.by_id[sid].target == name
                    and self.life[sid] in (RAN, DONE_CACHED) and self.by_id[sid].kind != "git"]
            if not done or set(done) <= self.committed.get(name, set()):
                return None
            from .git import GitProblem
            from .targets import commit

            target = self.pipeline.target(name)
            try:
                sha, files, pushed = commit(self.pipeline, target, done, self.run_id, self.push)
            except GitProblem as e:
                self.commit_failed = True
                self.bus.emit(ev.TargetCommitted(self.run_id, name, target.branch, "", (), False,
                                                 e.message + (f" (hint: {e.hint})" if e.hint else "")))
                if strict:
                    raise
                return None
            self.committed[name] = set(done)
            self.bus.emit(ev.TargetCommitted(self.run_id, name, target.branch, sha or "", files, pushed))
            return sha

    def _on_langgraph(self, start: bool) -> None:
        from langgraph.func import entrypoint, task

        @task(name="step")
        def run_step(sid: str) -> Outcome:
            return execute(self.ctx, self.states, self.by_id[sid], self.decisions[sid], self.tokens[sid])

        @entrypoint()
        def dispatch(_inputs) -> bool:
            self._loop(run_step, start)
            return True

        # --jobs is enforced by the loop; the pool also runs the entrypoint itself and
        # LangGraph's stream waiter, so it needs room beyond the steps.
        dispatch.invoke({"steps": len(self.order)}, config={"max_concurrency": self.jobs + 4,
                                      "recursion_limit": len(self.order) + 10})

    def _loop(self, run_step, start: bool) -> None:
        if start:
            roots = [sid for sid in self.order if self.unfinished[sid] == 0]
            for sid in self.order:
                if self.unfinished[sid]:
                    self.life.move(sid, WAITING)
            for sid in roots:  # a root that is cached releases its dependents at once
                if self._release(sid):
                    self._done(sid)
        running: dict = {}  # future → step
        while True:
            self._take_requests()
            if run_step is None:
                return
            self._take_changes()
            if not self.interrupted:
                self._start_ready(run_step, running)
            if not running:
                return
            done, _ = wait(list(running) + [self.wake], timeout=POLL, return_when=FIRST_COMPLETED)
            if self.wake in done:
                self.wake = Future()
            for fut in done:
                if fut in running:
                    self._finished(running.pop(fut), fut.result())
            self.ctx.processes.escalate()
            if self.interrupted and running and self.clock() >= self.deadline:
                for sid in running.values():  # a call that ignores cancellation: abandoned
                    self._finished(sid, Outcome(CANCELLED, error="interrupted"))
                return

    def _take_requests(self) -> None:
        while self.requests:
            sid, reason = self.requests.popleft()
            if sid not in self.life.state:
                continue
            self.cancelled.add(sid)
            if self.life[sid] == RUNNING:  # started after cancel() looked for its token
                self.tokens[sid].cancel(reason)
            elif self.life[sid] == READY:
                self.ready = [r for r in self.ready if r[2] != sid]
                heapq.heapify(self.ready)
                self._finished(sid, Outcome(CANCELLED, error=reason))

    def _take_changes(self) -> None:
        while self.changes and not self.interrupted:
            changed = self.changes.popleft()
            for p in changed:
                self.states.forget(p)  # hashed again, whatever its stat says
            hit = [sid for sid in self.order if self._reads(sid, changed)]
            if not hit:
                continue
            why = f"input {next(p for p in changed if self._reads(hit[0], (p,)))} changed"
            affected = self._downstream(hit)
            for sid in self.order:
                if sid not in affected:
                    continue
                state = self.life[sid]
                if state == RUNNING:
                    finished_upstream = any(self.life[u] in TERMINAL for u in affected
                                            if u in self.by_id[sid].needs)
                    if finished_upstream:  # it read an output that is about to change
                        self.again = True
                        self.cancel(sid, why)
                    else:
                        self.restarts[sid] = why
                        self.tokens[sid].cancel(why)
                elif state == READY:
                    self.ready = [r for r in self.ready if r[2] != sid]
                    heapq.heapify(self.ready)
                    self.life.move(sid, WAITING)
                    self._forget(sid)
                    if self._release(sid):
                        self._done(sid)
                elif state in (PENDING, WAITING):
                    self._forget(sid)
                else:
                    self.again = True

    def _reads(self, sid: str, changed) -> bool:
        step = self.by_id[sid]
        found = discovered_paths(step, self.previous)
        for p in changed:
            if any(matches(pat, p) for pat in step.inputs) and not any(matches(x, p) for x in step.exclude):
                return True
            if p in found:
                return True
        return False

    def _downstream(self, hit: list) -> set:
        out, todo = set(hit), list(hit)
        while todo:
            for d in self.dependents[todo.pop()]:
                if d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    def _forget(self, sid: str) -> None:
        """Its decision was made on inputs that changed: decide again, from the disk."""
        self.plan.fingerprints.pop(sid, None)
        self.decisions[sid] = Decision(sid, BLOCKED)

    def _start_ready(self, run_step, running: dict) -> None:
        held = []
        while self.ready and len(running) < self.jobs:
            item = heapq.heappop(self.ready)
            sid = item[2]
            slots = self._slots(sid)
            if any(cap is not None and self.slots_used.get(k, 0) >= cap for k, cap in slots):
                held.append(item)  # its model is busy: let another kind of step go first
                continue
            for k, _ in slots:
                self.slots_used[k] = self.slots_used.get(k, 0) + 1
            self.life.move(sid, RUNNING)
            self.tokens[sid] = CancelToken()
            d = self.decisions[sid]
            self.bus.emit(ev.StepStarted(self.run_id, sid, d.reasons))
            running[run_step(sid)] = sid
        for item in held:
            heapq.heappush(self.ready, item)

    def _slots(self, sid: str) -> list:
        """(limit key, capacity) of each model the step calls; worked out once a step."""
        slots = self.slots_of.get(sid)
        if slots is None:
            from .steps import models

            configs = models(self.by_id[sid])
            slots = []
            if configs:
                from .llm import concurrency, limit_key

                slots = [(limit_key(c), concurrency(c)) for c in configs]
            if self.by_id[sid].target:  # one worktree, one index: its steps run one at a time
                slots.append(("target:" + self.by_id[sid].target, 1))
            self.slots_of[sid] = slots
        return slots

    # -- a step ends, a step becomes ready -------------------------------------------------
    def _finished(self, sid: str, out: Outcome) -> None:
        if self.life[sid] == RUNNING:
            for k, _ in self._slots(sid):
                self.slots_used[k] -= 1
        why = self.restarts.pop(sid, None)
        if why is not None and not self.interrupted:
            if out.status == CANCELLED:  # stopped to start over with what is on disk now
                self.bus.emit(ev.StepCancelled(self.run_id, sid, why, out.duration))
                self.life.move(sid, WAITING)
                self._forget(sid)
                if self._release(sid):
                    self._done(sid)
                return
            self.again = True  # it ended before the stop reached it: on the old input, maybe
        self.life.move(sid, out.status)
        if out.status == RAN:
            self.known[sid] = out.outputs
            self.ran.add(sid)
            self.bus.emit(ev.StepCompleted(self.run_id, sid, out.duration, out.outputs,
                                           out.key or self.decisions[sid].key))
        elif out.status == FAILED:
            self._emit_failed(sid, out)
        else:
            self.bus.emit(ev.StepCancelled(self.run_id, sid, out.error or "cancelled", out.duration))
        self._done(sid)

    def _emit_failed(self, sid: str, out: Outcome) -> None:
        log = self.ctx.log_path(self.by_id[sid])
        rel_log = os.path.relpath(log, self.pipeline.root) if os.path.exists(log) else ""
        self.bus.emit(ev.StepFailed(self.run_id, sid, out.error, out.duration, out.exit_code,
                                    rel_log, out.tail))

    def _done(self, sid: str) -> None:
        """The step is finished: release the dependents it was the last need of. A worklist,
        not recursion: a failure or a restore at the head of a 2,000-step chain settles the
        whole chain here."""
        todo = [sid]
        while todo:
            for dep in self.dependents[todo.pop()]:
                self.unfinished[dep] -= 1
                if self.unfinished[dep] == 0 and self._release(dep):
                    todo.append(dep)

    def _release(self, sid: str) -> bool:
        """All of the step's needs are finished: skip it, restore it, or make it ready.
        True when it is finished at once (its dependents are then the caller's to release)."""
        if self.interrupted:
            return False
        if sid in self.cancelled:
            self.life.move(sid, CANCELLED)
            self.bus.emit(ev.StepCancelled(self.run_id, sid, "cancelled"))
            return True
        step = self.by_id[sid]
        for n in step.needs:
            state = self.life.state.get(n)
            if state in (FAILED, SKIPPED, CANCELLED):
                kind = {FAILED: "upstream_failed", SKIPPED: "upstream_skipped",
                        CANCELLED: "upstream_cancelled"}[state]
                self.life.move(sid, SKIPPED)
                self.bus.emit(ev.StepSkipped(self.run_id, sid, str(Reason(kind, n))))
                return True
        d = self._decide(step)
        if d.action == CACHED:
            try:
                missed = restore(self.ctx, self.states, d)
            except StepError as e:  # a path on disk is in the way: said, never followed
                self.life.move(sid, FAILED)
                self._emit_failed(sid, Outcome(FAILED, error=e.message + (f" (hint: {e.hint})" if e.hint else "")))
                return True
            if not missed:
                self.life.move(sid, DONE_CACHED)
                self.known[sid] = d.outputs
                self.bus.emit(ev.StepCached(self.run_id, sid, d.reasons, d.key))
                return True
            d = Decision(sid, RUN, missed, d.key, d.material)
        self.decisions[sid] = d
        if d.action == ERROR:
            self.life.move(sid, FAILED)
            self._emit_failed(sid, Outcome(FAILED, error=word(d.reasons)))
            return True
        self.life.move(sid, READY)
        heapq.heappush(self.ready, (-self.priority[sid], self.position[sid], sid))
        return False

    def _edited_worktree(self, upstream: str, step) -> bool:
        """The upstream is a coding agent that ran in the step's worktree: the files it
        changed are not declared paths, so the step's inputs are read from disk again."""
        from .targets import CHANGES

        up = self.by_id[upstream]
        return up.target == step.target and any(o.startswith(CHANGES + "/") for o in up.outputs)

    def _decide(self, step) -> Decision:
        """The plan's decision when nothing upstream ran; else decide again, now."""
        d = self.decisions[step.id]
        upstream_ran = [n for n in step.needs if n in self.ran]
        if not upstream_ran and d.action != BLOCKED and (d.key or d.action == ERROR):
            return d
        fp = self.plan.fingerprints.get(step.id)
        if fp is None or (any(n in self.ran for n in step.data_needs) and not _fixed_inputs(step, fp)) \
                or any(self._edited_worktree(n, step) for n in upstream_ran):
            # a glob may match new files; a coding agent may have changed any file
            fp = fingerprint(step, self.states, self.pipeline, discovered_paths(step, self.previous))
        forced = self.force_all or step.id in self.force
        upstream = {n: self.known[n] for n in step.data_needs}
        new = planner.decide(self.pipeline, step, fp, upstream, self.store.records.heads([step.id]),
                             forced, self.previous)
        if new.action == CACHED and upstream_ran:  # early cut-off
            new = Decision(new.step, CACHED, (Reason("upstream_unchanged"),) + new.reasons, new.key,
                           new.material, new.outputs, new.restore)
        return new
