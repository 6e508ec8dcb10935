"""What happens to one step, with side effects: restore its outputs, execute it, store
its outputs and its record. The scheduler decides when; this module does.

A step's record is written only after it succeeded and its outputs are stored as
objects, so a record never points at nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field

from . import events as ev
from .confine import Escape, check_dir, check_output, check_parent
from .errors import AmeliaError
from .processes import CancelToken, ProcessGroups, StepCancelled
from .steps import KINDS, StepError, implementation
from .store import Record
from .store.objects import with_mode
from .store.commit import GroupCommit
from .targets import fence

MAX_ENV_VALUE = 100 * 1024  # Linux caps one environment string at 128 KiB


class RunContext:
    """What a step kind may use while it executes."""

    def __init__(self, pipeline, store, run_id: str, bus=None, jobs: int = 1, states=None):
        self.pipeline = pipeline
        self.root = pipeline.root
        self.store = store
        self.run_id = run_id
        self.bus = bus
        self.jobs = jobs
        self.processes = ProcessGroups()
        self.commit = GroupCommit(store.objects, store.records)
        self._lock = threading.Lock()
        self.logs = store.logs_dir(run_id)
        self._llm = None
        self._kept_llm = None
        self.refresh = False  # `amelia index --refresh`: fetch URL sources again
        # The run's file-state memo (fingerprint.FileStates), when the scheduler runs it: a
        # kind that reads many files (an index) hashes them through it, not again.
        self.states = states
        # commit_target(name) -> sha | None: commit, now, the outputs of the target's steps
        # finished so far in this run (a `git:` step tags what its target's steps made).
        # Set by the scheduler; None outside a run.
        self.commit_target = None

    def keep_models(self, source) -> None:
        """Model calls go to `source(ctx)`: a ModelSession its caller keeps across runs
        (`watch`: provider clients stay connected); the run's end leaves it open."""
        self._kept_llm = source

    @property
    def llm(self):
        """The run's ModelSession, made on first use (agent steps only)."""
        if self._kept_llm is not None:
            return self._kept_llm(self)
        with self._lock:
            if self._llm is None:
                from .llm import ModelSession

                self._llm = ModelSession(self.root, self.emit_usage, self.jobs)
            return self._llm

    def emit_usage(self, step_id, config, completion, retries, latency, cost) -> None:
        u = completion.usage
        self.bus.emit(ev.ModelCalled(self.run_id, step_id, config.provider,
                                     completion.model or config.model, u.input_tokens,
                                     u.output_tokens, u.cached_tokens, u.cache_write_tokens,
                                     latency, retries, cost))

    def progress(self, step_id: str, message: str) -> None:
        if self.bus is not None:
            self.bus.emit(ev.StepProgress(self.run_id, step_id, message))

    def warn(self, step_id: str, message: str) -> None:
        if self.bus is not None:
            self.bus.emit(ev.StepWarning(self.run_id, step_id, message))

    def indexed(self, step_id: str, source: str, report, total: int) -> None:
        """A RAG source's index step finished (rag.indexer.IndexReport)."""
        if self.bus is not None:
            self.bus.emit(ev.SourceIndexed(
                self.run_id, step_id, source, len(report.added), len(report.changed),
                len(report.removed), report.unchanged, len(report.skipped),
                report.chunks_embedded, report.chunks_total, round(report.seconds, 3)))

    def close(self) -> None:
        """End of the run: every record saved (commit.error says if one could not be)."""
        if self._llm is not None:
            self._llm.close()
        self.processes.close()
        self.commit.flush()

    def log_path(self, step) -> str:
        return os.path.join(self.logs, self.store.log_name(step.id))

    def template_values(self, step, limit: int | None = MAX_ENV_VALUE) -> dict:
        """Values of the step's ${{ }} references, by the environment variable that carries them.

        limit: the most one value may hold (commands get them as environment variables,
        which Linux caps); None for prompts.
        """
        out = dict(step.static_vars)
        by_id = self.pipeline.by_id()
        for var in step.vars:
            if not var.step:
                continue
            path = by_id[var.step].outputs[0]
            full = os.path.join(self.root, path)
            whole = limit is None or var.field[0] == "json"  # a JSON field is read from the whole file
            try:
                with open(full, "rb") as f:
                    raw = f.read() if whole else f.read(limit + 1)
            except OSError as e:
                raise StepError(f"cannot read {path} for '{var.ref}': {e.strerror}") from None
            text = raw.decode("utf-8", errors="replace")
            if var.field[0] == "json":
                text = _json_field(text, list(var.field[1:]), var.ref, path)
            # The environment's limit is in bytes: count the value's UTF-8 bytes.
            if limit is not None and len(text.encode("utf-8", errors="replace")) > limit:
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


@dataclass(frozen=True)
class Outcome:
    """How one execution of a step ended."""

    status: str  # ran | failed | cancelled
    duration: float = 0.0
    outputs: dict = field(default_factory=dict)
    error: str = ""
    exit_code: int | None = None
    tail: str = ""
    key: str = ""  # ran: the key its record was saved under


def restore(ctx: RunContext, states, decision) -> tuple:
    """Put a cached step's outputs back from the store, each byte checked.

    Returns () when all are back, else the reasons the step must run instead (an object
    missing, or corrupt: moved aside, said once, and the step's run stores a good copy).
    Raises StepError when a path on disk is in the way (a link out of the project, a
    directory where a file belongs)."""
    from .reasons import Reason
    from .store.objects import CorruptObject

    objects = ctx.store.objects
    lost = tuple(Reason("output_lost", p) for p in decision.restore
                 if not objects.can_restore(decision.outputs[p]))
    if lost:
        return lost
    for p in decision.restore:
        try:
            fenced, rel = fence(ctx.root, p)  # a target's output stays in its worktree
            objects.restore(decision.outputs[p], os.path.join(fenced, rel.rstrip("/")), fenced)
        except CorruptObject as e:
            objects.quarantine(e.digest)
            return (Reason("object_corrupt", p),)
        except OSError as e:
            raise _output_in_the_way(p, e) from None
        except Escape as e:
            raise StepError(f"cannot restore {p}: {e}", hint=e.hint) from None
        finally:
            states.forget(p.rstrip("/"))
    return ()


def _output_in_the_way(path: str, e: OSError) -> StepError:
    if isinstance(e, IsADirectoryError):
        return StepError(f"output {path} is a directory on disk, but is declared as a file",
                         hint=f"remove the directory, or declare the output as {path.rstrip('/')}/")
    if isinstance(e, NotADirectoryError):
        return StepError(f"output {path} is a file on disk, but is declared as a directory",
                         hint="remove the file, or declare the output without the trailing /")
    return StepError(f"cannot write output {path}: {e.strerror or e}")


def clear_outputs(ctx: RunContext, states, step) -> None:
    """Remove the step's declared outputs before it runs (DVC does too), so a result can
    only hold what this run wrote: a file output goes, a directory output is emptied."""
    for o in step.outputs:
        states.forget(o.rstrip("/"))
    try:
        remove_outputs(ctx.root, step, keep_dirs=True)
    except OutputInTheWay as e:
        raise StepError(e.message, hint=e.hint) from None


class OutputInTheWay(Exception):
    """What is on disk at an output's path cannot be removed as that output."""

    def __init__(self, output: str, message: str, hint: str):
        super().__init__(message)
        self.output, self.message, self.hint = output, message, hint


def remove_outputs(root: str, step, dry_run: bool = False, keep_dirs: bool = False) -> list:
    """Remove the step's declared outputs; the paths removed (or that would be)."""
    return [o for o in step.outputs if remove_output(*fence(root, o), dry_run, keep_dirs)]


def remove_output(root: str, output: str, dry_run: bool = False, keep_dirs: bool = False) -> bool:
    """Remove one declared output (a directory ends with '/'), never following a link and
    never anything outside the project; False when there is nothing to remove. keep_dirs:
    empty a directory output, leave the directory. Raises OutputInTheWay."""
    import shutil

    from .store.objects import clear_directory

    full = os.path.join(root, output.rstrip("/"))
    try:
        check_parent(root, full)
        if os.path.islink(full):
            check_dir(root, full)  # a link out of the project is in the way: said
            action = os.unlink  # a link inside goes, never what it points at
        elif output.endswith("/"):
            if os.path.isdir(full):
                action = clear_directory if keep_dirs else shutil.rmtree
            elif os.path.exists(full):
                raise NotADirectoryError(full)
            else:
                return False
        elif os.path.isdir(full):
            raise IsADirectoryError(full)
        elif os.path.lexists(full):
            action = os.unlink
        else:
            return False
    except Escape as e:
        raise OutputInTheWay(output, f"cannot remove output {output}: {e}", e.hint) from None
    except OSError as e:
        err = _output_in_the_way(output, e)
        raise OutputInTheWay(output, err.message, err.hint) from None
    if not dry_run:
        action(full)
    return True


def execute(ctx: RunContext, states, step, decision, cancel: CancelToken) -> Outcome:
    """Run the step's kind, store its outputs, then its record. Never raises.

    A step that fails or is stopped leaves none of its outputs (Make's .DELETE_ON_ERROR):
    a half-written file must not pass for a result, nor be read by a glob, nor outlive
    its declaration unnoticed; what the step printed is in its log."""
    outcome = _execute(ctx, states, step, decision, cancel)
    if outcome.status != "ran":
        for o in step.outputs:
            states.forget(o.rstrip("/"))
        try:
            remove_outputs(ctx.root, step)
        except (OutputInTheWay, OSError):
            pass  # what is in the way was said, or the step failed for it
    return outcome


def _execute(ctx: RunContext, states, step, decision, cancel: CancelToken) -> Outcome:
    started = time.monotonic()
    try:
        clear_outputs(ctx, states, step)
        if KINDS[step.kind].stops_on_cancel:
            result = implementation(step.kind).execute(step, ctx, cancel)
        else:
            result = _execute_watched(step, ctx, cancel)
        outputs = collect_outputs(ctx, states, step)
    except StepCancelled:
        return Outcome("cancelled", time.monotonic() - started, error=cancel.reason)
    except StepError as e:
        msg = e.message + (f" (hint: {e.hint})" if e.hint else "")
        return Outcome("failed", time.monotonic() - started, error=msg, exit_code=e.exit_code, tail=e.tail)
    except AmeliaError as e:  # e.g. the store could not record a model call's usage
        return Outcome("failed", time.monotonic() - started, error=e.message +
                       (f" (hint: {e.hint})" if e.hint else ""))
    except Exception as e:  # a bug in a step kind must not take the others down
        import traceback

        return Outcome("failed", time.monotonic() - started,
                       error=f"internal error: {type(e).__name__}: {e}", tail=traceback.format_exc(limit=5))
    duration = time.monotonic() - started
    key, material = decision.key, decision.material
    if step.depfile:  # the files it named now: the key the next decision will compute
        key, material = with_discovered(states, material, getattr(result, "discovered", ()))
    ctx.commit.save(Record(key, step.id, outputs, material, ctx.run_id, duration))
    return Outcome("ran", duration, outputs, key=key)


def with_discovered(states, material: dict, discovered: tuple) -> tuple:
    """(key, material) with the depfile's files as they are after the run."""
    from .fingerprint import MISSING
    from .keys import cache_key

    material = {k: v for k, v in material.items() if k != "discovered"}
    for p in discovered:
        states.forget(p)  # the step may have just written it
    found = {p: states.hash(p) or MISSING for p in discovered}
    if found:
        material["discovered"] = found
    return cache_key(material), material


def _execute_watched(step, ctx, cancel: CancelToken) -> None:
    """Execute in a daemon thread and give up on it once cancelled and the grace is over:
    a model call cannot be interrupted, but the run must still stop in time."""
    from .processes import GRACE

    box: dict = {}
    done = threading.Event()

    def work():
        try:
            box["result"] = implementation(step.kind).execute(step, ctx, cancel)
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name=f"step {step.id}", daemon=True).start()
    while not done.wait(0.05):
        if cancel.cancelled and time.monotonic() - cancel.when > GRACE:
            raise StepCancelled(cancel.reason)
    if "error" in box:
        raise box["error"]
    cancel.check()
    return box.get("result")


def collect_outputs(ctx: RunContext, states, step) -> dict:
    """Hash the step's outputs into the object store; all must exist."""
    outputs = {}
    for o in step.outputs:
        rel = o.rstrip("/")
        full = os.path.join(ctx.root, rel)
        try:
            check_output(*fence(ctx.root, o))
        except Escape as e:
            raise StepError(f"output {o}: {e}", hint=e.hint) from None
        if o.endswith("/"):
            if not os.path.isdir(full):
                raise StepError(f"did not write {o}",
                                hint="the command must create the directory, relative to the project root")
            outputs[o] = ctx.store.objects.put_tree(full, durable=False)  # GroupCommit syncs
        else:
            if os.path.isdir(full):
                raise _output_in_the_way(o, IsADirectoryError(full))
            if not os.path.isfile(full):
                raise StepError(f"did not write {o}",
                                hint="the command must write it, relative to the project root")
            outputs[o] = with_mode(ctx.store.objects.put_file(full, durable=False), os.stat(full).st_mode)
        states.forget(rel)
    return outputs
