"""`amelia clean [STEP…]`: remove declared outputs, never anything else."""

from __future__ import annotations

from .api import open_project, step_ids


def clean(file: str | None, names=(), dry_run: bool = False) -> list:
    """`amelia clean [STEP…]`: remove the declared outputs of the steps (all without
    names), never anything else; the next run restores them from the store. Returns the
    paths removed (or that would be, with dry_run)."""
    from .runner import OutputInTheWay, remove_outputs

    pipeline, store = open_project(file, create=False)
    try:
        if store is not None:
            store.lock.acquire()
        chosen = step_ids(pipeline, names) if names else tuple(s.id for s in pipeline.steps)
        by_id = pipeline.by_id()
        removed = []
        for sid in chosen:
            try:
                removed += remove_outputs(pipeline.root, by_id[sid], dry_run)
            except OutputInTheWay as e:
                from .errors import EnvironmentProblem

                raise EnvironmentProblem(f"step '{sid}': {e.message}", hint=e.hint) from None
        return removed
    finally:
        if store is not None:
            store.close()
