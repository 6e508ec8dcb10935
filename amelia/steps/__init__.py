"""The step-kind registry: a step does exactly one thing, named by one key.

Each kind is one module with the hooks below; adding a kind is its module plus one
line in KINDS. Modules are imported only when a step of that kind is scheduled, so
planning imports no step implementation at all.

Hooks of a kind module (all but `execute` optional; defaults here):
- execute(step, ctx, cancel) -> StepResult: do the work; stop when `cancel` says so.
- workspace(step, ctx) -> Workspace: the working directory and the base of its paths
  (the project root; a git worktree once targets land).
- models(step) -> list[ModelConfig]: the models it calls (their keys are checked before
  any step runs, and per-model concurrency bounds how many run at once).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # the key that marks a step of this kind in the file
    module: str  # where its hooks live
    template_fields: tuple  # fields whose text may hold ${{ }} references
    allowed_refs: tuple  # reference roots its templates may use
    available: bool = True
    # True: once cancelled, execute returns within the grace period (its processes are
    # killed). False: it may block in a call that cannot be interrupted (an HTTP request),
    # so the scheduler waits for it in a watcher thread and abandons it after the grace.
    stops_on_cancel: bool = True
    calls_models: bool = False  # has a `models` hook (keys, per-model concurrency)


KINDS = {
    "run": Kind("run", "amelia.steps.run", ("run",), ("params", "steps", "env", "name")),
    "agent": Kind("agent", "amelia.steps.agent", ("prompt",), ("params", "steps", "env", "name"),
                  stops_on_cancel=False, calls_models=True),
    # Later issues fill these in; the file format already takes them (features.py says so).
    "retrieve": Kind("retrieve", "amelia.steps.retrieve", (), ("params", "steps", "env", "name"), False),
    "git": Kind("git", "amelia.steps.git", (), ("params", "steps", "env", "name"), False),
}


def kind_of(step_data: dict) -> list[str]:
    """The kinds a step's keys claim; a valid step claims exactly one."""
    return [k for k in KINDS if k in step_data]


def implementation(kind: str):
    return importlib.import_module(KINDS[kind].module)


@dataclass(frozen=True)
class Workspace:
    cwd: str  # where the step runs
    base: str  # what its paths are relative to


def workspace_of(step, ctx) -> Workspace:
    """The kind's `workspace` hook, or the project root."""
    hook = getattr(implementation(step.kind), "workspace", None)
    return hook(step, ctx) if hook else Workspace(ctx.root, ctx.root)


def models(step) -> list:
    """The models a step calls (a kind's module is imported only if it calls any)."""
    if not KINDS[step.kind].calls_models:
        return []
    return implementation(step.kind).models(step)


@dataclass(frozen=True)
class StepResult:
    """What a step's execution reports besides the files it wrote."""

    usage: dict | None = None  # tokens and cost, for agent steps


class StepError(Exception):
    """A step failed in a way the user should read: a message, not a traceback."""

    def __init__(self, message: str, exit_code: int | None = None, tail: str = "", hint: str = ""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.tail = tail
        self.hint = hint
