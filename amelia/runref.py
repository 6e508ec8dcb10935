"""Finding a project's run history and one run in it, as `show` does (RUN: an id, a unique
prefix of one, or `last`). Shared by `report` and `ui`; cli.py's `_history_store` and
`_find_run` are the same lookups."""

from __future__ import annotations

import os

from .errors import UsageError


def history_store(file):
    """The project's store: from FILE, from amelia.yaml here, or else the project (git work
    tree) around the current directory. UsageError when it has no store yet."""
    from . import api
    from .paths import find_root
    from .store import Store, exists

    if file or os.path.exists(api.DEFAULT_FILE):
        pipeline, store = api.open_project(file, (), create=False)
        if store is None:
            raise UsageError("no runs yet in this project", hint="run `amelia run` first")
        return store
    root = find_root(os.path.join(os.getcwd(), api.DEFAULT_FILE))
    if not exists(root):
        raise UsageError("no runs yet in this project", hint="run `amelia run` first")
    return Store(root)


def find_run(store, ref: str) -> str:
    """The id of the run `ref` names; UsageError (exit 2) when none or several do."""
    from .errors import did_you_mean

    ids = store.history.run_ids()
    if not ids:
        raise UsageError("no runs yet", hint="run `amelia run` first")
    if ref == "last":
        return ids[0]
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run '{ref}'", hint=did_you_mean(ref, ids) or "`amelia runs` lists them")
    raise UsageError(f"run id '{ref}' is ambiguous ({len(matches)} runs)", hint="give more characters")
