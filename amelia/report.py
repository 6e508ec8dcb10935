"""`amelia report [RUN] [-o FILE]`: one run as one self-contained HTML page (issue 16).

The page is amelia.web's rendering of `view.run_view`: the DAG with each step's state,
per step its reason, time, tokens, cost, model, output (read from the store, as that run
made it) and log tail; the run's totals. Inline CSS and JS, no request of any kind: it
opens from disk, offline, and can be sent to someone as one file.
"""

from __future__ import annotations

import os

REPORTS = "reports"  # under .amelia/


def _pipeline(file):
    """The project's pipeline, for the steps' kinds, needs and models; None when the file
    cannot be read now (an old run is still reported, from its history alone)."""
    from . import api
    from .errors import AmeliaError

    if not file and not os.path.exists(api.DEFAULT_FILE):
        return None
    try:
        return api.validate(file)
    except AmeliaError:
        return None


def default_path(store, run_id: str) -> str:
    from .store import STORE_DIR

    return os.path.join(store.root, STORE_DIR, REPORTS, f"{run_id}.html")


def render(store, pipeline, run_id: str) -> str:
    from .web.html import run_page
    from .web.view import run_view

    return run_page(run_view(store, pipeline, run_id))


def write_report(file, run_ref: str = "last", out_path=None) -> str:
    """Write the report of RUN (an id, a unique prefix or `last`); the path written (as
    given with -o, else .amelia/reports/RUN.html shown relative to here when inside)."""
    from . import atomic
    from .errors import EnvironmentProblem
    from .runref import find_run, history_store

    store = history_store(file)
    try:
        run_id = find_run(store, run_ref)
        text = render(store, _pipeline(file), run_id)
        path = out_path or default_path(store, run_id)
        try:
            atomic.write_text(path, text)
        except OSError as e:
            raise EnvironmentProblem(f"cannot write {path}: {e.strerror}",
                                     hint="choose another file with -o") from None
    finally:
        store.close()
    if out_path:
        return out_path
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel
