"""`amelia watch`: run, then run again what each save makes stale, holding the project lock.

Threads: the main thread is the one controller (it reads a queue, debounces, reloads the
pipeline, starts runs, takes the signals); the watcher thread (notify.py) puts batches of
changes on the queue; each run goes on a run thread (`api.run_locked`, the chain `run`
walks), which puts its result on the queue when it ends. A change of data while a run goes
is handed to its Scheduler at once (`changed`: it stops and restarts what reads the file);
a change of the pipeline file is reloaded after the quiet time: the steps whose definition
changed are cancelled and the new pipeline runs once the current run has ended.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass

from .. import api
from ..errors import AmeliaError, Interrupted
from .debounce import Debouncer
from .notify import Watcher
from .paths import Changes, Classifier


@dataclass(frozen=True)
class WatchOptions:
    file: str | None = None
    params: tuple = ()
    models: tuple = ()
    jobs: int = 0
    debounce_ms: int = 50
    json: bool = False
    verbose: bool = False
    argv: tuple = ()


class Stop(BaseException):
    """SIGINT or SIGTERM while no run goes: the watch ends."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Session:
    def __init__(self, opts: WatchOptions, view, clock=time.monotonic):
        self.opts = opts
        self.view = view
        self.run_opts = api.RunOptions(file=opts.file, params=opts.params, models=opts.models,
                                       jobs=opts.jobs, json=opts.json, verbose=opts.verbose,
                                       argv=opts.argv)
        self.queue: queue.Queue = queue.Queue()
        self.debounce = Debouncer(opts.debounce_ms / 1000.0, clock=clock)
        self.watcher = Watcher(lambda raw: self.queue.put(("fs", raw)))
        self.lock = threading.Lock()  # scheduler, early: shared with the run thread
        self.scheduler = None
        self.early: set = set()  # data changes for a run whose Scheduler is not there yet
        self.handed: set = set()  # data changes handed to the current run
        self.pipeline = None
        self.next_pipeline = None  # a valid new pipeline, for when the current run ends
        self.classifier: Classifier | None = None
        self.store = None
        self.running: threading.Thread | None = None
        self.want_run = False
        self.trigger: set = set()  # the changes the next run is for
        self.stop_signal = 0
        self.models = KeptModels()
        self.run_started = 0.0

    # -- the session ----------------------------------------------------------------------
    def main(self) -> int:
        saved = self._signals()
        try:
            self._open()
            return self._loop()
        except Stop as s:
            return 143 if s.signum == signal.SIGTERM else 130
        finally:
            if self.running is not None:  # leaving on an error: stop the run first
                scheduler = self.scheduler
                if scheduler is not None:
                    scheduler.interrupt(signal.SIGTERM)
                self.running.join(5)
            self.watcher.stop()
            self.view.close()
            if self.store is not None:
                self.store.close()
            for sig, old in saved.items():
                signal.signal(sig, old)

    def _open(self) -> None:
        path = api.pipeline_path(self.opts.file)
        try:
            self.pipeline, self.store = api.open_project(path, self.opts.params, models=self.opts.models)
        except AmeliaError as e:
            if e.exit_code != 2 or not os.path.isfile(path):
                raise
            from ..paths import find_root
            from ..store import Store

            self.store = Store(find_root(path))  # invalid at start: say so, wait for a fix
            self.store.lock.acquire()
            self.view.started(path, 0)
            self.view.error(e)
            self.view.waiting()
            self.classifier = _FileOnly(path, self.store.root)
            self.watcher.watch(self.classifier.watch_set())
            return
        self.store.lock.acquire()  # held until the watch ends: a second `run` gets exit 4
        self.view.started(self.pipeline.file, len(self.pipeline.steps))
        self._set_pipeline(self.pipeline)
        self.want_run = True

    def _loop(self) -> int:
        while True:
            if self.want_run and self.running is None and not self.debounce.pending:
                self._start_run()
            try:
                item = self.queue.get(timeout=self.debounce.wait())
            except queue.Empty:
                item = None
            if item is not None:
                kind, payload = item
                if kind == "fs":
                    if payload is None:
                        raise AmeliaError(f"the file watcher stopped: {self.watcher.error}")
                    self._on_changes(self.classifier.classify(payload))
                elif kind == "done":
                    code = self._on_done(payload)
                    if code is not None:
                        return code
            if self.debounce.due():
                self._on_quiet(self.debounce.take())

    # -- changes ----------------------------------------------------------------------------
    def _on_changes(self, changes: Changes) -> None:
        if not changes:
            return
        data = set(changes.data)
        if self.running is not None and data:
            self._hand(data)  # at once: the run stops and restarts what reads them
            data = set()
        self.debounce.add({("p", p) for p in changes.pipeline} | {("d", p) for p in data})

    def _hand(self, paths: set) -> None:
        with self.lock:
            self.handed |= paths
            if self.scheduler is not None:
                self.scheduler.changed(sorted(paths))
            else:
                self.early |= paths

    def _on_quiet(self, batch: set) -> None:
        pipeline_paths = {p for k, p in batch if k == "p"}
        data = {p for k, p in batch if k == "d"}
        reloaded = self._reload() if pipeline_paths else False
        if data and self.running is not None:  # came in before the run began: hand them now
            self._hand(data)
            return
        self.trigger |= data | pipeline_paths
        if data or reloaded:
            self.want_run = True
        elif self.running is None:
            self.view.waiting()

    def _reload(self) -> bool:
        """The pipeline file again; False when it is invalid (the error is shown, the
        current pipeline goes on). A valid one replaces the current pipeline now, or, while
        a run goes, once it has ended; the steps whose definition changed stop now."""
        try:
            new = api.reload(self.store, self.opts.file, self.opts.params, self.opts.models)
        except AmeliaError as e:
            self.view.error(e)
            return False
        if new.root != self.store.root:
            self.view.error(AmeliaError("the pipeline's root changed", hint="restart `amelia watch`"))
            return False
        old = self.next_pipeline or self.pipeline
        changed = _changed_steps(old, new) if old is not None else [s.id for s in new.steps]
        self.view.reloaded(new.file, changed, len(new.steps))
        if self.running is None:
            self._set_pipeline(new)
            return True
        with self.lock:
            if self.scheduler is not None:
                for sid in changed:
                    if sid in self.scheduler.by_id:
                        self.scheduler.cancel(sid, "its definition changed")
        self.next_pipeline = new
        return True

    def _set_pipeline(self, pipeline) -> None:
        self.pipeline = pipeline
        self.classifier = Classifier(pipeline, _discovered(pipeline, self.store))
        self.watcher.watch(self.classifier.watch_set())

    # -- runs -------------------------------------------------------------------------------
    def _start_run(self) -> None:
        self.want_run = False
        if self.pipeline is None:
            return
        paths = sorted(self.trigger)
        self.trigger = set()
        if paths:
            self.view.changes(paths)
        self.handed = set()
        self.run_started = time.time()
        self.running = threading.Thread(target=self._run, args=(self.pipeline,), name="amelia-run",
                                        daemon=True)
        self.running.start()

    def _run(self, pipeline) -> None:
        hooks = api.RunHooks(reporter=self.view, on_scheduler=self._attach, on_result=self._detach)
        try:
            out = api.run_locked(pipeline, self.store, self.run_opts, self.view.out, hooks=hooks)
        except BaseException as e:  # noqa: BLE001 - the controller decides what it means
            out = e
        self._detach(None)
        # The embedded Qdrant store is one process's at a time: between runs it is let go,
        # so `amelia query` and `amelia chat` work beside a watch (the embedding model stays).
        vectors = sys.modules.get("amelia.rag.vectors")
        if vectors is not None:
            vectors.close_all()
        self.queue.put(("done", out))

    def _attach(self, scheduler) -> None:
        """On the run thread, before the scheduler runs: reach it from now on."""
        self.models.lend(scheduler.ctx)
        with self.lock:
            self.scheduler = scheduler
            if self.early:
                scheduler.changed(sorted(self.early))
                self.early = set()
        if self.stop_signal and not scheduler.interrupted:
            scheduler.interrupt(self.stop_signal)

    def _detach(self, _result) -> None:
        with self.lock:
            self.scheduler = None

    def _on_done(self, out) -> int | None:
        self.running.join()
        self.running = None
        result = out if isinstance(out, dict) else None
        self.view.finished(result, time.time() - self.run_started)
        if isinstance(out, Interrupted) or self.stop_signal:
            return getattr(out, "exit_code", 0) if isinstance(out, Interrupted) else (
                143 if self.stop_signal == signal.SIGTERM else 130)
        if isinstance(out, AmeliaError):
            from ..errors import StepsFailed

            if not isinstance(out, StepsFailed):  # said by the run's lines already
                self.view.error(out)
        elif isinstance(out, BaseException):
            raise out
        if self.next_pipeline is not None:
            self._set_pipeline(self.next_pipeline)
            self.next_pipeline = None
            self.want_run = True
        elif any(s.depfile for s in self.pipeline.steps):  # a depfile may name new inputs
            self._set_pipeline(self.pipeline)
        with self.lock:
            late, self.early = self.early, set()
        during = self.handed | late
        if (result is not None and result.get("again")) or late or (during and self._stale()):
            self.view.again(sorted(during))
            self.want_run = True
        if not self.want_run and not self.debounce.pending:
            self.view.waiting()
        return None

    def _stale(self) -> bool:
        """Whether anything would run now (a change seen as the run was ending)."""
        plan, _, _ = api.make_plan(self.pipeline, self.store)
        return not all(d.action == "cached" and not d.restore for d in plan.decisions)

    # -- signals ----------------------------------------------------------------------------
    def _signals(self) -> dict:
        saved = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, self._on_signal)
        return saved

    def _on_signal(self, signum, _frame) -> None:
        """No lock here (the main thread may hold one): set a flag, stop the run's steps."""
        if self.running is None:
            raise Stop(signum)
        self.stop_signal = self.stop_signal or signum
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.interrupt(signum)


def _changed_steps(old, new) -> list:
    """Steps of `old` whose definition is not the same in `new`, or that are gone."""
    from dataclasses import asdict

    import json

    def shape(step):
        return json.dumps(asdict(step), sort_keys=True, default=str)

    now = new.by_id()
    return [s.id for s in old.steps if s.id not in now or shape(now[s.id]) != shape(s)] + \
        [sid for sid in now if sid not in old.by_id()]


def _discovered(pipeline, store) -> dict:
    """step → the files its depfile named when it last ran (watched as inputs)."""
    steps = [s for s in pipeline.steps if s.depfile]
    if not steps:
        return {}
    from ..fingerprint import discovered_paths

    previous = api.PreviousMaterial(store)
    return {s.id: discovered_paths(s, previous) for s in steps}


class _FileOnly(Classifier):
    """Before the pipeline file is valid: only it is watched, every change to it a reload."""

    def __init__(self, path: str, root: str):
        from .paths import _rel

        self.root = root
        self.pipeline_file = _rel(root, os.path.abspath(path))
        self.sources, self.listings, self.outputs, self.literal, self.globs, self._inputs = \
            set(), [], (), set(), [], []


class KeptModels:
    """One ModelSession for the whole watch: provider clients (and their connections) stay
    open between runs. Each run borrows it (made on the first model call, so a pipeline
    without agent steps never imports a provider); the run's end does not close it."""

    def __init__(self):
        self.session = None
        self.env_stamp = None
        self.lock = threading.Lock()

    def lend(self, ctx) -> None:
        ctx.keep_models(self.get)

    def get(self, ctx):
        with self.lock:
            stamp = _stat(os.path.join(ctx.root, ".env"))
            if self.session is None or stamp != self.env_stamp:  # keys edited: new clients
                if self.session is not None:
                    self.session.close()
                from ..llm import ModelSession

                self.session = ModelSession(ctx.root, ctx.emit_usage, ctx.jobs)
                self.env_stamp = stamp
            self.session.emit_usage = ctx.emit_usage  # usage belongs to the current run
            return self.session


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def watch(opts: WatchOptions, view) -> int:
    return Session(opts, view).main()

