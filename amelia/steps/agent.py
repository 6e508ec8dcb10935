"""`agent:` + `prompt:` steps: one model call whose answer is the step's output.

At resolve time (`resolve`, with resolve_agents.py, the kind's helper) the persona, the
model, the prompt and the schema become an AgentConfig; prompt and schema files are read
then. At run time the prompt and system text are rendered from their templates (values,
not shell), the model is called through the run's ModelSession, and a structured answer
(`schema:`) must parse and validate; the validator's message is fed back for up to
`repairs` more attempts. The output file is written only once the answer is whole.

A model that edits files (claude-code: `targets.edits_files`) is called inside a sandbox
(amelia/sandbox.py): its target's worktree or a scratch one, never the user's checkout;
what it changed is recorded in the step's changes dir. Other models get the step's
working directory (the project root, or its target's worktree).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

from .. import templates
from ..keys import model_material
from ..model_config import ModelConfig
from . import Resolved, StepError, StepResult

DEFAULT_REPAIRS = 2


@dataclass(frozen=True)
class AgentConfig:
    model: ModelConfig  # the persona's temperature already applied
    system: str  # the persona's system text (a template)
    prompt: str  # the prompt's text, read from its file if it names one (a template)
    schema: dict | None = None  # JSON Schema of a structured answer, checked at resolve time
    repairs: int = DEFAULT_REPAIRS

    @classmethod
    def from_dict(cls, d: dict) -> "AgentConfig":
        return cls(**{**d, "model": ModelConfig(**d["model"])})


CONFIG = AgentConfig

# The persona, the model's settings and the prompt/schema texts change the answer,
# wherever in the file (or in which file) they are written: the key holds them as
# resolved, in place of the step's `agent`, `model` and `schema` as written. Its `context:`
# is its retrieve step's (context:ID): the agent's key follows what that step found.
KEY_REPLACES = ("model", "schema", "context")


def key_material(config: AgentConfig) -> dict:
    return {"agent": {"system": config.system, "prompt": config.prompt, "schema": config.schema,
                      "repairs": config.repairs, "model": model_material(config.model)}}


def resolve(ctx, sid: str, data: dict) -> Resolved:
    from ..resolve_agents import AgentResolution

    return AgentResolution(ctx, sid, data).resolve()


def models(step) -> list:
    return [step.config.model]


def render(text: str, values: dict) -> str:
    def value(ref: str) -> str:
        if ref.startswith("env."):
            return os.environ.get(ref[4:], "")
        return values[templates.env_name(ref)]

    return templates.substitute(text, value)


def schema_problem(text: str, schema: dict) -> tuple[object, str | None]:
    """(parsed answer, None) when it is valid JSON matching the schema, else (None, why)."""
    import jsonschema

    try:
        value = json.loads(_strip_fence(text))
    except ValueError as e:
        return None, f"the answer is not JSON ({e})"
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return None, f"at {where}: {error.message}"
    return value, None


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in ```json fences; the JSON inside is the answer."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t


PROGRESS_EVERY = 1.0  # seconds between progress events of a streaming answer


def execute(step, ctx, cancel) -> StepResult:
    from ..providers import ProviderError, Request

    cfg: AgentConfig = step.config
    model = cfg.model
    cancel.check()
    if step.timeout:  # the step's own bound applies to each call of its model
        model = dataclasses.replace(model, timeout=min(model.timeout, step.timeout))
    values = ctx.template_values(step, limit=None)
    prompt_text = cfg.prompt
    found = _context(step, ctx)
    if found is not None:
        values[templates.env_name("context")] = found
        if not any(v.ref == "context" for v in step.vars):  # no place for it: before the prompt
            prompt_text = "Context:\n\n${{ context }}\n\n" + prompt_text
    system, prompt = render(cfg.system, values), render(prompt_text, values)
    schema = cfg.schema
    from ..processes import StepProcesses

    from .. import sandbox, targets
    from . import workspace_of

    # A coding agent edits files: it works in a worktree (its target's, or a scratch one),
    # never in the user's checkout; what it changed becomes the step's changes dir.
    box = sandbox.prepare(step, ctx) if targets.edits_files(cfg) else None
    try:
        request = Request(system=system, prompt=prompt, json_schema=schema,
                          workdir=box.workdir if box else workspace_of(step, ctx).cwd,
                          processes=StepProcesses(ctx.processes, cancel))
        try:
            answer = ctx.llm.call(step.id, model, request, on_text=_progress(step, ctx)).text
            if schema is not None:
                answer = _validated(step, ctx, model, request, answer, schema, cfg.repairs, cancel)
        except ProviderError as e:
            raise StepError(f"{model.provider} model '{model.name}': {e.message}") from None
        cancel.check()  # an answer that arrives after Ctrl-C is not written
        if box is not None:
            done, box = box, None  # finish removes a scratch worktree itself
            sandbox.finish(done, ctx, step)
    finally:
        if box is not None:  # failed or cancelled: nothing is recorded
            sandbox.discard(box, ctx)
    _write(os.path.join(ctx.root, step.outputs[0]), answer)
    return StepResult()


def _context(step, ctx) -> str | None:
    """What the step's retrieval found, rendered (None for a step without `context:`)."""
    from ..resolve.sources import CONTEXT_PREFIX, context_path
    from .retrieve import render_context

    if CONTEXT_PREFIX + step.id not in ctx.pipeline.by_id():
        return None
    try:
        return render_context(os.path.join(ctx.root, context_path(step.id)))
    except (OSError, ValueError, KeyError) as e:
        raise StepError(f"cannot read what the step's retrieval found: {e}",
                        hint=f"run it again with --force {CONTEXT_PREFIX}{step.id}") from None


def _progress(step, ctx):
    """A streaming callback that reports how much has arrived, at most once a second."""
    state = {"chars": 0, "last": time.monotonic()}

    def on_text(chunk: str) -> None:
        state["chars"] += len(chunk)
        now = time.monotonic()
        if now - state["last"] >= PROGRESS_EVERY:
            state["last"] = now
            ctx.progress(step.id, f"{state['chars']} characters received")

    return on_text


def _validated(step, ctx, model, request, answer: str, schema: dict, repairs: int, cancel) -> str:
    for attempt in range(repairs + 1):
        cancel.check()
        value, problem = schema_problem(answer, schema)
        if problem is None:
            return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        if attempt == repairs:
            break
        # Providers send system, history, then the prompt: the failed exchange becomes
        # history and the validator's message the new prompt.
        history = request.history + ({"role": "user", "content": request.prompt},
                                     {"role": "assistant", "content": answer})
        repair = (f"Your answer does not match the required JSON Schema: {problem}. "
                  f"Reply with only the corrected JSON.")
        request = dataclasses.replace(request, prompt=repair, history=history)
        cancel.check()
        answer = ctx.llm.call(step.id, model, request).text
    raise StepError(f"the answer does not match the schema after {repairs} repair"
                    f"{'s' if repairs != 1 else ''}: {problem}",
                    hint="simplify the schema, raise max_tokens, or use a stronger model")


def _write(path: str, text: str) -> None:
    """Write through a temp file: the output is the whole answer or the old file."""
    from ..atomic import write_text

    write_text(path, text if text.endswith("\n") else text + "\n")
