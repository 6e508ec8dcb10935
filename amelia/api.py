"""The Python API, and the one chain the CLI and `watch` walk:
load → validate → resolve → graph → fingerprint → plan → compile → run → record.

Heavy modules (yaml, jsonschema, networkx, langgraph, rich) are imported only on
the branch that needs them: an unchanged pipeline with nothing stale imports none.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field

from .errors import AmeliaError, StaleOutputs, StepsFailed, UsageError
from .spec import SPEC_FORMAT_VERSION, Pipeline, canonical_json

DEFAULT_FILE = "amelia.yaml"
VERSION = "0.1.0"


@dataclass(frozen=True)
class RunOptions:
    file: str | None = None
    params: tuple = ()  # (name, raw value) pairs from -p
    models: tuple = ()  # (model name, replacement model name) pairs from --model
    jobs: int = 0  # 0: the number of cores
    force: tuple = ()
    force_all: bool = False
    only: tuple = ()
    dry_run: bool = False
    check: bool = False
    json: bool = False
    verbose: bool = False
    wait: bool = False
    adopt: bool = False  # record the outputs on disk as the current inputs' result; run nothing
    refresh: bool = False  # fetch the pages of URL sources again (`amelia index --refresh`)
    push: bool = False  # push a target's commit to its `push:` remote (`amelia run --push`)
    frozen: bool = False  # amelia.lock must pin every remote recipe already; it is never written
    argv: tuple = field(default_factory=tuple)


def pipeline_path(file: str | None) -> str:
    if file:
        return file
    if os.path.exists(DEFAULT_FILE):
        return DEFAULT_FILE
    for alt in ("amelia.yml",):
        if os.path.exists(alt):
            return alt
    raise UsageError(f"no {DEFAULT_FILE} in {os.getcwd()}",
                     hint="pass a pipeline file, e.g. `amelia run pipelines/sdlc.yaml`, or create amelia.yaml")


MAX_PIPELINE_BYTES = 1024 * 1024  # = loader.MAX_FILE_BYTES (a test holds them equal); the no-op imports no loader


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PIPELINE_BYTES + 1)
    except OSError:
        from .loader import load_file

        load_file(path)  # raises the located, friendly error
        raise


def _digest(path: str, raw: bytes, overrides: dict) -> str:
    h = hashlib.sha256()
    h.update(f"amelia {VERSION} spec {SPEC_FORMAT_VERSION}\0{os.path.abspath(path)}\0".encode())
    h.update(canonical_json(overrides).encode() + b"\0")
    h.update(raw)
    return h.hexdigest()


def _overrides(params=(), models=(), frozen: bool = False) -> dict:
    """-p and --model values (and AMELIA_MODEL), and --frozen, as one mapping: part of the
    digest (a frozen resolution checked amelia.lock; another may have written it)."""
    model_map = dict(parse_model_overrides(os.environ.get("AMELIA_MODEL", "")))
    model_map.update(dict(models))
    out = {"params": dict(params), "models": model_map}
    if frozen:
        out["frozen"] = True
    return out


def parse_model_overrides(text: str) -> list:
    """'default=claude,fast=claude' → [('default', 'claude'), ('fast', 'claude')]."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise UsageError(f"--model takes NAME=MODEL, got {item!r}",
                             hint="e.g. --model default=claude: steps using `default` use `claude`")
        out.append((name.strip(), target.strip()))
    return out


def resolve_file(path: str, overrides: dict | None = None, raw: bytes | None = None,
                 digest: str = "", placeholders: bool = False, update: bool = False) -> Pipeline:
    """The full, uncached chain: parse, schema-validate, resolve, check the graph.

    overrides: as made by `_overrides` (params and model replacements); default none.
    """
    overrides = overrides or _overrides()
    from . import resolve, schema
    from .errors import raise_all
    from .loader import load_bytes

    raw = _read(path) if raw is None else raw
    loaded = load_bytes(raw, path)
    if not isinstance(loaded.data, dict):
        from .errors import Location, PipelineError

        raise PipelineError("a pipeline file is a mapping of keys", Location(path, 1, 1),
                            "start with `amelia: 1` and a `steps:` mapping")
    raise_all(schema.validate(loaded))
    digest = digest or _digest(path, raw, overrides)
    sources = ((path, hashlib.sha256(raw).hexdigest()),)
    recipes = resolve.RecipeOptions(frozen=bool(overrides.get("frozen")), update=update)
    return resolve.resolve(loaded, path, overrides["params"], digest, sources,
                           model_overrides=overrides["models"], placeholders=placeholders, recipes=recipes)


def _declares_root(raw: bytes) -> bool:
    return raw.startswith(b"root:") or b"\nroot:" in raw


def _sources_unchanged(pipeline: Pipeline) -> bool:
    """Prompt, schema and params files read at resolve time still have the bytes they had,
    and each foreach glob (`glob:PATTERN`) still matches the same files (one listing, no read)."""
    for rel, sha in pipeline.sources[1:]:
        if rel.startswith("glob:"):
            from .listing import unchanged

            if not unchanged(pipeline.root, rel, sha):
                return False
            continue
        try:
            with open(os.path.join(pipeline.root, rel), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != sha:
                    return False
        except OSError:
            return False
    return True


def open_project(file: str | None, params=(), create: bool = True, models=(), frozen: bool = False):
    """(Pipeline, Store): the resolved pipeline from the store's cache when the bytes match."""
    from .paths import find_root
    from .store import Store, exists

    path = pipeline_path(file)
    overrides = _overrides(params, models, frozen)
    raw = _read(path)
    digest = _digest(path, raw, overrides)
    if _declares_root(raw):
        pipeline = resolve_file(path, overrides, raw, digest)
        root = pipeline.root
    else:
        root, pipeline = find_root(path), None
    if not create and not exists(root):
        return (pipeline or resolve_file(path, overrides, raw, digest)), None
    store = Store(root)
    if pipeline is None:
        pipeline = _cached_or_resolved(store, path, overrides, raw, digest)
    return pipeline, store


def _cached_or_resolved(store, path: str, overrides: dict, raw: bytes, digest: str) -> Pipeline:
    """The resolution the store keeps under `digest` while its sources are unchanged; else
    resolved now (and kept)."""
    cached = store.pipelines.get(digest)
    if cached is not None:
        pipeline = Pipeline.from_json(cached)
        if _sources_unchanged(pipeline):
            return pipeline
    pipeline = resolve_file(path, overrides, raw, digest)
    store.pipelines.save(digest, pipeline.to_json())
    return pipeline


def reload(store, file: str | None, params=(), models=()) -> Pipeline:
    """The pipeline file resolved again for a project whose store is open (`watch`, after an
    edit): through the store's resolve cache, so an unchanged file costs a hash. Raises the
    located errors `validate` shows."""
    path = pipeline_path(file)
    overrides = _overrides(params, models)
    raw = _read(path)
    digest = _digest(path, raw, overrides)
    if _declares_root(raw):
        return resolve_file(path, overrides, raw, digest)
    return _cached_or_resolved(store, path, overrides, raw, digest)


def validate(file: str | None, params=(), models=(), frozen: bool = False) -> Pipeline:
    """The file checked, resolved with the given params; params with no value at all
    get a stand-in (a check needs no values; a run does)."""
    path = pipeline_path(file)
    return resolve_file(path, _overrides(params, models, frozen), placeholders=True)


def lock(file: str | None, update: bool = False) -> tuple:
    """`amelia lock`: resolve the file and its recipes, pinning every remote recipe in
    amelia.lock (update: resolve every tag again). (lock file path, {key: entry dict})."""
    from .include import Lock
    from .resolve.recipes import lock_path

    path = pipeline_path(file)
    resolve_file(path, _overrides(), placeholders=True, update=update)
    where = lock_path(path)
    pinned = Lock.load(where) if os.path.exists(where) else None
    entries = {k: pinned.get(k) for k in pinned.keys()} if pinned is not None else {}
    return where, entries


class PreviousMaterial:
    """step → the key material of its last good result, read from the store on first use
    (only steps that run are explained, so a no-op reads none)."""

    def __init__(self, store):
        self.store = store
        self.cache: dict = {}

    def get(self, step: str, default=None):
        if step not in self.cache:
            self.cache[step] = self.store.records.latest_detail(step)
        return self.cache[step] if self.cache[step] is not None else default


def make_plan(pipeline: Pipeline, store, force=(), force_all=False, only=()):
    """Fingerprint every selected step and decide; returns (Plan, FileStates, previous)."""
    from . import planner
    from .fingerprint import FileStates, discovered_paths, fingerprint

    # --only names steps: a foreach step with no instances selects nothing, not everything
    selected = planner.selection(pipeline, step_ids(pipeline, only)) if only else None
    force = step_ids(pipeline, force)
    states = FileStates(pipeline.root, store.memo.load())
    previous = PreviousMaterial(store)
    fps = {s.id: fingerprint(s, states, pipeline, discovered_paths(s, previous)) for s in pipeline.steps
           if selected is None or s.id in selected}
    records = store.records.heads(fps)
    plan = planner.plan(pipeline, fps, records, frozenset(force), force_all, selected, previous)
    return plan, states, previous


def step_ids(pipeline: Pipeline, names) -> tuple:
    """Step ids named on the command line: an id, a foreach step's name for all of its
    instances (`compile` → `compile[main]`, `compile[util]`, …), or a recipe's namespace
    for all of its steps (`review` → `review.draft`, `review.critique`)."""
    by_id = pipeline.by_id()
    out = []
    for name in names:
        if name in by_id:
            out.append(name)
            continue
        group = [sid for sid in by_id if sid.startswith(name + "[")]
        if not group:  # an included recipe's namespace: `--only review` is every step of it
            group = [sid for sid in by_id if sid.startswith(name + ".")]
        if not group and name not in pipeline.groups:  # a foreach step may have no instances
            from .errors import did_you_mean

            names_ = list(dict.fromkeys(sid.split("[", 1)[0] for sid in by_id)) + list(by_id)
            raise UsageError(f"unknown step '{name}'", hint=did_you_mean(name, names_) or
                             f"steps are: {', '.join(by_id)}")
        out += group
    return tuple(out)


def new_run_id() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S", time.localtime()) + "-" + os.urandom(2).hex()


def run(opts: RunOptions, out=None) -> dict:
    """Plan and run; raises StepsFailed / StaleOutputs / AmeliaError for the CLI to map."""
    import time

    t0 = time.time()
    out = ReaderMayLeave(out or sys.stdout)
    if opts.adopt and (opts.dry_run or opts.check or opts.force or opts.force_all):
        flag = "--dry-run" if opts.dry_run else "--check" if opts.check else "--force"
        raise UsageError(f"--adopt and {flag} cannot be used together",
                         hint="--adopt records what is on disk and runs nothing; use it alone "
                              "(with --only to adopt some steps)")
    pipeline, store = open_project(opts.file, opts.params, models=opts.models, frozen=opts.frozen)
    try:
        if opts.dry_run or opts.check:
            return _show_plan(pipeline, store, opts, out)
        store.lock.acquire(wait=opts.wait)
        return run_locked(pipeline, store, opts, out, t0)
    finally:
        store.close()


@dataclass(frozen=True)
class RunHooks:
    """How a long-lived caller (`amelia watch`) takes part in one run; the defaults are `run`'s."""

    reporter: object = None  # gets the events instead of the plain, live or JSON display
    on_scheduler: object = None  # called (on the run's thread) with the Scheduler before it runs
    on_result: object = None  # called with the scheduler's result dict, before any error is raised


def run_locked(pipeline: Pipeline, store, opts: RunOptions, out, started: float | None = None,
               hooks: RunHooks | None = None) -> dict:
    """One run in a project whose lock the caller holds (`run` once; `watch` again and again).
    The store stays open. Raises as `run` does."""
    import time

    started = time.time() if started is None else started
    from .orphans import remove_orphans

    _prepare_targets(pipeline, store)

    for path in remove_orphans(pipeline, store):
        out.write(json.dumps({"type": "output_removed", "path": path, "reason": "no step writes it now"}) + "\n"
                  if opts.json else f"remove  {path}  no step writes it now\n")
    if opts.adopt:
        from .adopt import adopt

        return adopt(pipeline, store, opts, out, make_plan)
    plan, states, previous = make_plan(pipeline, store, opts.force, opts.force_all, opts.only)
    if not (opts.json or opts.verbose) and all(
            d.action == "cached" and not d.restore for d in plan.decisions) and not (
            pipeline.targets and (opts.push or _commit_pending(pipeline))):
        return _record_noop(pipeline, store, plan, states, opts, out, started)
    from .preflight import check_environment

    check_environment(pipeline, plan)
    return _execute(pipeline, store, plan, states, previous, opts, out, hooks)


def _prepare_targets(pipeline: Pipeline, store) -> None:
    """Make the worktree of each target a step runs in, so its files can be hashed (two
    small reads per target when they are there: targets.ready)."""
    if pipeline.targets:
        from .targets import prepare

        prepare(pipeline, store.dir)


def _commit_pending(pipeline: Pipeline) -> bool:
    """A run that executed targeted steps ended before its commits (killed): the next run
    makes them, even when every step is cached (one stat)."""
    from .targets import pending_marker

    return os.path.exists(pending_marker(pipeline.root))


def _show_plan(pipeline, store, opts, out) -> dict:
    """`plan`, `run --dry-run`, `run --check`: say what would run and why; run nothing."""
    from .orphans import remove_orphans

    orphans = remove_orphans(pipeline, store, dry_run=True)
    _prepare_targets(pipeline, store)
    plan, states, _ = make_plan(pipeline, store, opts.force, opts.force_all, opts.only)
    decisions = list(plan.decisions)
    store.memo.save(states.updates)
    from .render import plan_json, plan_text

    if not opts.json:
        out.write("".join(f"remove  {p}  no step writes it now\n" for p in orphans))
    out.write(plan_json(pipeline, decisions, orphans) if opts.json else plan_text(pipeline, decisions, orphans))
    out.flush()
    if plan.errors():
        _raise_plan_errors(pipeline, plan.errors())
    stale = [d.step for d in plan.stale()]
    if opts.check and (stale or orphans):
        names = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        what = (f"{len(stale)} step{'s are' if len(stale) != 1 else ' is'} not up to date: {names}"
                if stale else "")
        if orphans:
            what += ("; " if what else "") + (f"{len(orphans)} output{'s' if len(orphans) != 1 else ''} "
                                              f"no step writes would be removed")
        raise StaleOutputs(what, hint="run `amelia run` and commit the outputs")
    return {"status": "ok", "plan": decisions}


def _raise_plan_errors(pipeline: Pipeline, bad: list) -> None:
    """Steps that cannot run as declared, each located at the key that declares the input
    (the file is parsed again for the positions: this is the error path only)."""
    from .errors import PlanError, raise_all
    from .loader import load_file

    loaded = load_file(pipeline.file)
    source = loaded.source
    errors = []
    for d in bad:
        declared = _raw_inputs(loaded.data, d.step)
        for r in d.reasons:
            where = ("steps", d.step, "inputs")
            if isinstance(declared, list) and r.subject in declared:
                where += (declared.index(r.subject),)
            hint = ("create the file, fix the path, or add the step that writes it (as its `output`)"
                    if r.kind == "missing_input" else "")
            errors.append(PlanError(f"step '{d.step}' cannot run: {r}", source.locate(where), hint))
    raise_all(errors)


def _raw_inputs(data, sid: str):
    try:
        return data["steps"][sid].get("inputs") or []
    except (AttributeError, KeyError, TypeError):
        return []


def _execute(pipeline, store, plan, states, previous, opts, out, hooks: RunHooks | None = None) -> dict:
    """Run the plan with the reporters the options ask for; record it."""
    from . import events as ev
    from .reporters import EventsFileReporter, JsonReporter, LogFileReporter, PlainReporter, RecordReporter
    from .scheduler import Scheduler

    hooks = hooks or RunHooks()
    run_id = new_run_id()
    bus = ev.Bus()
    if hooks.reporter is not None:
        bus.subscribe(hooks.reporter)
    elif opts.json:
        bus.subscribe(JsonReporter(out))
    elif _is_tty(out):
        from .reporters.live import LiveReporter

        bus.subscribe(LiveReporter(opts.verbose))
    else:
        bus.subscribe(PlainReporter(out, opts.verbose))
    log = LogFileReporter(os.path.join(store.logs_dir(run_id), "run.log"))
    bus.subscribe(log)
    bus.subscribe(EventsFileReporter(os.path.join(store.logs_dir(run_id), EventsFileReporter.FILE)))
    # Last: if the run's end cannot be saved (a full disk), the lines above are out first.
    bus.subscribe(RecordReporter(store.history, list(opts.argv)))
    jobs = opts.jobs or os.cpu_count() or 1
    scheduler = Scheduler(pipeline, plan, store, states, bus, run_id, jobs,
                          frozenset(step_ids(pipeline, opts.force)), opts.force_all, previous)
    scheduler.ctx.refresh = opts.refresh
    scheduler.push = opts.push
    if hooks.on_scheduler is not None:
        hooks.on_scheduler(scheduler)
    with stop_signals(scheduler.interrupt):
        result = scheduler.run()
    store.memo.save(states.updates)
    result["run_id"] = run_id
    if hooks.on_result is not None:
        hooks.on_result(result)
    if isinstance(result["record_error"], AmeliaError):  # a StoreProblem: its file and hint
        raise result["record_error"]
    if result["record_error"] is not None:
        from .errors import EnvironmentProblem

        raise EnvironmentProblem(f"the results of this run could not be saved in the cache: "
                                 f"{result['record_error']}",
                                 hint="check the disk under .amelia/ (space, permissions); "
                                      "the steps will run again next time")
    if result["status"] == "interrupted":
        from .errors import Interrupted

        raise Interrupted.by_signal(result["signal"])
    if log.error is not None and result["status"] == "ok":
        raise log.error
    if result["status"] == "failed":
        n = result["counts"]["failed"]
        raise StepsFailed(f"{n} step{'s' if n != 1 else ''} failed")
    return result


def _record_noop(pipeline, store, plan, states, opts, out, started: float) -> dict:
    """Nothing is stale: record the run and say so, without the runner or the event bus."""
    import time

    from .render import summary_line

    from .store import StepRow

    run_id = new_run_id()
    counts = {"ran": 0, "cached": len(plan.decisions), "failed": 0, "skipped": 0}
    rows = [StepRow(run_id, d.step, "cached", "", d.key, started, 0.0) for d in plan.decisions]
    store.history.start_run(run_id, pipeline.name, pipeline.file, list(opts.argv))
    duration = time.time() - started
    store.history.finish_run(run_id, "ok", {"counts": counts, "duration": duration}, rows)
    store.memo.save(states.updates)
    out.write(summary_line("ok", counts, duration, run_id) + "\n")
    return {"status": "ok", "counts": counts, "run_id": run_id}


class stop_signals:
    """SIGINT and SIGTERM call `handler(signum)` instead of raising, while a run executes
    (the scheduler stops its steps and the run ends as interrupted). Main thread only."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, handler):
        self.handler = handler
        self.saved: dict = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self.saved[sig] = signal.signal(sig, lambda signum, _frame: self.handler(signum))
        return self

    def __exit__(self, *exc):
        import signal

        for sig, old in self.saved.items():
            signal.signal(sig, old)


class ReaderMayLeave:
    """A run's output stream: when its reader goes away (`amelia run | head`), printing
    stops and the run goes on (a BrokenPipeError must not stop steps half-way)."""

    def __init__(self, stream):
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._left()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._left()

    def isatty(self) -> bool:
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def _left(self) -> None:
        self.gone = True
        try:  # what is still buffered would fail again at exit: send it nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (AttributeError, OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _is_tty(stream) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def report_error(e: AmeliaError, as_json: bool = False, stream=None) -> int:
    stream = stream or sys.stderr
    if as_json:
        import json

        stream.write(json.dumps({"error": e.to_dict()}) + "\n")
    else:
        from .safetext import safe  # messages quote file names, globs and YAML snippets

        stream.write(safe(e.render()) + "\n")
    return e.exit_code

