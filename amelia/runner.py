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
from .processes import CancelToken, ProcessGroups, StepCancelled
from .steps import KINDS, StepError, implementation
from .store import Record
from .store.commit import GroupCommit

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
        self.processes = ProcessGroups()
        self.commit = GroupCommit(store.objects, store.records)
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
        """End of the run: every record saved (commit.error says if one could not be)."""
        if self._llm is not None:
            self._llm.close()
        self.processes.close()
        self.commit.flush()

    def log_path(self, step) -> str:
        return os.path.join(self.logs, f"{step.id}.log")

    def template_values(self, step, limit: int | None = MAX_ENV_VALUE) -> dict:
        """Values of the step's ${{ }} references, by the environment variable that carries them.

        limit: the most one value may hold (commands get them as environment variables,
        which Linux caps); None for prompts.
        """
        out = dict(step.static_vars)
        by_id = self.pipeline.by_id()
        for var in step.vars:
            parts = var.ref.split(".")
            if parts[0] != "steps":
                continue
            path = by_id[parts[1]].outputs[0]
            full = os.path.join(self.root, path)
            whole = limit is None or parts[2] == "json"  # a JSON field is read from the whole file
            try:
                with open(full, "rb") as f:
                    raw = f.read() if whole else f.read(limit + 1)
            except OSError as e:
                raise StepError(f"cannot read {path} for '{var.ref}': {e.strerror}") from None
            text = raw.decode("utf-8", errors="replace")
            if parts[2] == "json":
                text = _json_field(text, parts[3:], var.ref, path)
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


def restore(ctx: RunContext, states, decision) -> bool:
    """Put a cached step's outputs back from the store; False if an object is missing."""
    objects = ctx.store.objects
    if not all(objects.can_restore(decision.outputs[p]) for p in decision.restore):
        return False
    for p in decision.restore:
        objects.restore(decision.outputs[p], os.path.join(ctx.root, p.rstrip("/")))
        states.forget(p.rstrip("/"))
    return True


def execute(ctx: RunContext, states, step, decision, cancel: CancelToken) -> Outcome:
    """Run the step's kind, store its outputs, then its record. Never raises."""
    started = time.monotonic()
    try:
        if KINDS[step.kind].stops_on_cancel:
            implementation(step.kind).execute(step, ctx, cancel)
        else:
            _execute_watched(step, ctx, cancel)
        outputs = collect_outputs(ctx, states, step)
    except StepCancelled:
        return Outcome("cancelled", time.monotonic() - started, error=cancel.reason)
    except StepError as e:
        msg = e.message + (f" (hint: {e.hint})" if e.hint else "")
        return Outcome("failed", time.monotonic() - started, error=msg, exit_code=e.exit_code, tail=e.tail)
    except Exception as e:  # a bug in a step kind must not take the others down
        import traceback

        return Outcome("failed", time.monotonic() - started,
                       error=f"internal error: {type(e).__name__}: {e}", tail=traceback.format_exc(limit=5))
    duration = time.monotonic() - started
    ctx.commit.save(Record(decision.key, step.id, outputs, decision.material, ctx.run_id, duration))
    return Outcome("ran", duration, outputs)


def _execute_watched(step, ctx, cancel: CancelToken) -> None:
    """Execute in a daemon thread and give up on it once cancelled and the grace is over:
    a model call cannot be interrupted, but the run must still stop in time."""
    from .processes import GRACE

    box: dict = {}
    done = threading.Event()

    def work():
        try:
            implementation(step.kind).execute(step, ctx, cancel)
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


def collect_outputs(ctx: RunContext, states, step) -> dict:
    """Hash the step's outputs into the object store; all must exist."""
    outputs = {}
    for o in step.outputs:
        rel = o.rstrip("/")
        full = os.path.join(ctx.root, rel)
        if o.endswith("/"):
            if not os.path.isdir(full):
                raise StepError(f"declared output directory {o} was not created")
            outputs[o] = ctx.store.objects.put_tree(full, durable=False)  # GroupCommit syncs
        else:
            if not os.path.isfile(full):
                raise StepError(f"declared output {o} was not created",
                                hint="the command must write it, relative to the project root")
            outputs[o] = ctx.store.objects.put_file(full, durable=False)
        states.forget(rel)
    return outputs
