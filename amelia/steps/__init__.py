"""The step-kind registry: a step does exactly one thing, named by one key.

Kinds are looked up by name and their modules imported only when a step of that
kind runs, so planning a pipeline imports no step implementation at all.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # the key that marks a step of this kind in the file
    module: str  # where its `execute(step, ctx)` lives
    template_fields: tuple  # fields whose text may hold ${{ }} references
    allowed_refs: tuple  # reference roots its templates may use
    available: bool = True


KINDS = {
    "run": Kind("run", "amelia.steps.run", ("run",), ("params", "steps", "env", "name")),
    # Later issues fill these in; the file format already takes them.
    "agent": Kind("agent", "amelia.steps.agent", ("prompt",), ("params", "steps", "env", "name")),
    "retrieve": Kind("retrieve", "amelia.steps.retrieve", (), ("params", "steps", "env", "name"), False),
    "git": Kind("git", "amelia.steps.git", (), ("params", "steps", "env", "name"), False),
}


def kind_of(step_data: dict) -> list[str]:
    """The kinds a step's keys claim; a valid step claims exactly one."""
    return [k for k in KINDS if k in step_data]


def implementation(kind: str):
    return importlib.import_module(KINDS[kind].module)


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
