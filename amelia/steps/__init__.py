"""The step-kind registry: a step does exactly one thing, named by one key.

Each kind is one module with the hooks below; adding a kind is its module plus one
line in KINDS. Nothing outside a kind's module knows what its settings are: resolve,
keys, the runner and the scheduler reach them only through these hooks.

Hooks of a kind module (all but `execute` optional; defaults here):
- CONFIG: the frozen dataclass of its resolved settings, `Step.config`. It round-trips
  through the resolved-pipeline cache as plain JSON (`dataclasses.asdict` out, `CONFIG(**d)`
  back in, or `CONFIG.from_dict(d)` when a field is a dataclass or a tuple).
- resolve(ctx, sid, data) -> Resolved: its part of the step as written (`data`, the step's
  mapping; `sid`, its id in its document) → its CONFIG, the template texts whose `${{ }}`
  references are checked (and become the step's dependencies), and the files it read.
  Errors are reported with `ctx.err` (ctx: resolve.KindContext), all at once. Default:
  no config, and the texts of the kind's `template_fields`.
- key_material(config) -> dict: its part of the step's normalised definition (keys.py):
  entries that replace the step's fields as written; KEY_REPLACES names the written
  fields the material stands for (left out of the definition). Default: none.
- models(step) -> list[ModelConfig]: the models it calls (their keys are checked before
  any step runs, and per-model concurrency bounds how many run at once). Read from
  `step.config`. Only called when the Kind says `calls_models`.
- workspace(step, ctx) -> Workspace: the working directory and the base of its paths
  (default: the project root, or the target's worktree for a step with `target:`).
- execute(step, ctx, cancel) -> StepResult: do the work; stop when `cancel` says so.

A kind module imports at its top only what its declarations need (dataclasses, the
pipeline model): reading a cached resolution imports it when a step's config is first
read (spec._KindConfig; a no-op reads none). What `resolve` and `execute` need
(processes, providers, jsonschema, SDKs) is imported inside them. Planning never calls
a hook.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # the key that marks a step of this kind in the file
    module: str  # where its hooks live
    template_fields: tuple  # fields whose text may hold ${{ }} references (the default resolve)
    allowed_refs: tuple  # reference roots its templates may use
    # True: once cancelled, execute returns within the grace period (its processes are
    # killed). False: it may block in a call that cannot be interrupted (an HTTP request),
    # so the scheduler waits for it in a watcher thread and abandons it after the grace.
    stops_on_cancel: bool = True
    calls_models: bool = False  # has a `models` hook (keys, per-model concurrency)
    # False: its outputs only describe state kept elsewhere (an index in Qdrant), so a
    # missing or edited output means "run it again", never "put the recorded bytes back".
    restores: bool = True
    written: bool = True  # False: made by the resolver, never written under `steps:`
    # How it reads RAG sources (resolve/sources.py): "context" (its `context:` items, or its
    # persona's `sources:`, retrieved by a step of their own before it runs), "query" (its
    # own key names one source: its result is the retrieval), or "" (none).
    retrieves: str = ""


_REFS = ("params", "steps", "env", "name")

# Whether a kind may be used in this version is features.py's to say (retrieve and git
# are not implemented yet: a step of either is a located error at resolve time).
KINDS = {
    "run": Kind("run", "amelia.steps.run", ("run",), _REFS),
    "agent": Kind("agent", "amelia.steps.agent", ("prompt",), _REFS,
                  stops_on_cancel=False, calls_models=True, retrieves="context"),
    "retrieve": Kind("retrieve", "amelia.steps.retrieve", (), _REFS, stops_on_cancel=False,
                     retrieves="query"),
    # A RAG source's index node: made from `sources:`, never written under `steps:`.
    "index": Kind("index", "amelia.steps.index", (), ("params", "name"), stops_on_cancel=False,
                  restores=False, written=False),
    # GitPython calls cannot be interrupted (and a commit may push): watched, not killed.
    "git": Kind("git", "amelia.steps.git", (), ("params", "name"), stops_on_cancel=False),
}


def kind_of(step_data: dict) -> list[str]:
    """The kinds a step's keys claim; a valid step claims exactly one."""
    return [k for k, kind in KINDS.items() if kind.written and k in step_data]


def implementation(kind: str):
    return importlib.import_module(KINDS[kind].module)


# -- resolve time ------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    """What a kind's `resolve` hook made of one step."""

    config: object = None  # its CONFIG; None when an error was reported
    texts: tuple = ()  # (text, key path, file or None): templates whose references are checked
    sources: tuple = ()  # (path, sha256) of each file read (a prompt file): the resolve cache checks them


def resolve(kind: str, ctx, sid: str, data: dict) -> Resolved:
    """The kind's `resolve` hook, or: no config, the texts of its template fields."""
    hook = getattr(implementation(kind), "resolve", None)
    if hook is not None:
        return hook(ctx, sid, data)
    return Resolved(None, tuple(ctx.template_texts(data, KINDS[kind].template_fields)))


def key_material(kind: str, config) -> tuple[dict, tuple]:
    """(material, fields as written it replaces) of the kind's part of a step's key."""
    module = implementation(kind)
    hook = getattr(module, "key_material", None)
    if hook is None or config is None:
        return {}, ()
    return hook(config), tuple(getattr(module, "KEY_REPLACES", ()))


def config_from_json(kind: str, data):
    """A step's config read back from the resolved-pipeline cache."""
    if data is None:
        return None
    cls = implementation(kind).CONFIG
    from_dict = getattr(cls, "from_dict", None)
    return from_dict(data) if from_dict is not None else cls(**data)


# -- run time ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Workspace:
    cwd: str  # where the step runs
    base: str  # what its paths are relative to


def workspace_of(step, ctx) -> Workspace:
    """The kind's `workspace` hook; else the target's worktree (the project's folder in
    it) for a step with `target:`; else the project root."""
    hook = getattr(implementation(step.kind), "workspace", None)
    if hook:
        return hook(step, ctx)
    if step.target:
        from ..targets import base_dir

        where = base_dir(ctx.root, ctx.pipeline.target(step.target))
        return Workspace(where, where)
    return Workspace(ctx.root, ctx.root)


def models(step) -> list:
    """The models a step calls (a kind's module is imported only if it calls any)."""
    if not KINDS[step.kind].calls_models:
        return []
    return implementation(step.kind).models(step)


@dataclass(frozen=True)
class StepResult:
    """What a step's execution reports besides the files it wrote."""

    usage: dict | None = None  # tokens and cost, for agent steps
    discovered: tuple = ()  # project files its depfile named: inputs from the next decision on


class StepError(Exception):
    """A step failed in a way the user should read: a message, not a traceback."""

    def __init__(self, message: str, exit_code: int | None = None, tail: str = "", hint: str = ""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.tail = tail
        self.hint = hint
