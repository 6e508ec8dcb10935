"""Before any step runs: what a run needs from the machine is there (each model's API key,
each step's shell, each RAG source's embedding model), said once for all the steps that need it, not as one failure per step
half-way through a run. Imported only when something will run.
"""

from __future__ import annotations

from .spec import Pipeline


def check_environment(pipeline: Pipeline, plan) -> None:
    _keys(pipeline, plan)
    _shells(pipeline, plan)
    _embedding_models(pipeline, plan)


def _embedding_models(pipeline: Pipeline, plan) -> None:
    """A source that will be indexed with a fastembed model by name: the model is in
    fastembed's local cache (it is loaded now, and kept for the step; nothing is ever
    downloaded). The bundled model and model directories are checked at validate time."""
    from .planner import CACHED
    from .rag.sources import DEFAULT_MODEL

    by_id = pipeline.by_id()
    named = {}
    for d in plan.decisions:
        step = by_id[d.step]
        if d.action != CACHED and step.kind == "index" and step.config.model != DEFAULT_MODEL:
            named.setdefault(step.config.model, []).append(d.step)
    if not named:
        return
    from .rag.embedder import is_directory_model, load_embedder
    from .rag.errors import RagError

    for model, steps in named.items():
        if is_directory_model(model, pipeline.root):
            continue
        try:
            load_embedder(model, pipeline.root)
        except RagError as e:
            from .errors import EnvironmentProblem

            raise EnvironmentProblem(f"{e.message} (needed by {', '.join(steps)})", hint=e.hint) from None


def _shells(pipeline: Pipeline, plan) -> None:
    """Every shell a step that may run names is installed, before any step runs (as
    keys are): one error naming the shell and its steps, not one failure per step."""
    import shutil

    from .planner import CACHED

    by_id = pipeline.by_id()
    missing: dict = {}
    for d in plan.decisions:
        step = by_id[d.step]
        if d.action == CACHED or step.kind != "run" or not step.config.shell:
            continue
        shell = step.config.shell[0]
        if shutil.which(shell) is None:
            missing.setdefault(shell, []).append(d.step)
    if missing:
        from .errors import EnvironmentProblem

        shell, steps = next(iter(missing.items()))
        more = f" (and {len(missing) - 1} more shells)" if len(missing) > 1 else ""
        raise EnvironmentProblem(
            f"shell '{shell}' is not installed: step{'s' if len(steps) != 1 else ''} "
            f"{', '.join(steps[:5])}{' …' if len(steps) > 5 else ''} use{'' if len(steps) != 1 else 's'} it{more}",
            hint=f"install {shell}, or name another with `shell:` (sh, bash, or a command line)")


def _keys(pipeline: Pipeline, plan) -> None:
    """Every model a step that may run calls has its key, before any step runs."""
    from .planner import CACHED
    from .steps import models

    by_id = pipeline.by_id()
    needed: dict = {}  # ModelConfig → the steps that use it
    for d in plan.decisions:
        if d.action != CACHED:
            for config in models(by_id[d.step]):
                needed.setdefault(config, []).append(d.step)
    if not needed:
        return
    from .errors import EnvironmentProblem
    from .providers.keys import missing_keys

    missing = missing_keys(list(needed), pipeline.root)
    if missing:
        lines = []
        for name, provider, var in missing:
            steps = sorted({s for cfg, ss in needed.items() if cfg.key_env() == var for s in ss})
            lines.append(f"{var} is not set: model '{name}' ({provider}) needs it for step"
                         f"{'s' if len(steps) != 1 else ''} {', '.join(steps)}")
        raise EnvironmentProblem("; ".join(lines),
                                 hint="export it, or put it in .env at the project root")
