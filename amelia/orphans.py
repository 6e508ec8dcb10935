"""Outputs no step writes any more: removed, so a run leaves what a clean run would.

When the resolved pipeline changes (an edit, a `-p` that moves an output's path, a
foreach instance dropped because its file was deleted), an output the previous
resolution declared and the current one does not is an orphan. Left on disk, a glob
such as `build/*.o` would still read it. It is removed when, and only when, its bytes
are ones a record of its step says amelia wrote: a file someone changed since is kept.

Cost: one small file read per run; the comparison only when the pipeline changed.
"""

from __future__ import annotations

import hashlib
import os


def _marker(store, pipeline) -> str:
    name = hashlib.sha256(os.path.abspath(pipeline.file).encode()).hexdigest()[:16]
    return os.path.join(store.dir, "last-run", name)


def _resolution_id(pipeline) -> str:
    """Which resolution this is: the file and -p (digest) and what it read (prompt files,
    params files, a foreach glob's listing), which can change with the digest the same."""
    h = hashlib.sha256(pipeline.digest.encode())
    for path, sha in pipeline.sources:
        h.update(f"\0{path}\0{sha}".encode())
    return h.hexdigest()


def remove_orphans(pipeline, store, dry_run: bool = False) -> list:
    """The paths removed (relative to the root); records which outputs this resolution
    declares, for the next run to compare with. dry_run: the paths that would be removed;
    nothing is touched (plan, --check)."""
    import json

    marker = _marker(store, pipeline)
    ident = _resolution_id(pipeline)
    try:
        with open(marker) as f:
            if f.readline().strip() == ident:
                return []  # the common case: one short line read
            declared = json.loads(f.readline() or "{}")
    except (OSError, ValueError):
        declared = {}
    removed = []
    if declared:
        from .fingerprint import FileStates

        states = FileStates(pipeline.root, store.memo.load())
        removed = _remove(pipeline, store, states, declared, dry_run)
    if dry_run:
        return removed
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    tmp = marker + ".tmp"
    with open(tmp, "w") as f:
        f.write(ident + "\n" + json.dumps({s.id: list(s.outputs) for s in pipeline.steps}) + "\n")
    os.replace(tmp, marker)
    return removed


def _remove(pipeline, store, states, declared: dict, dry_run: bool) -> list:
    from .confine import Escape, check_output
    from .runner import OutputInTheWay, remove_output
    from .targets import fence

    current = {o.rstrip("/") for s in pipeline.steps for o in s.outputs}
    removed = []
    for step_id, outputs in declared.items():
        gone = [o for o in outputs if not _still_declared(o.rstrip("/"), current)]
        if not gone:
            continue
        written = {}  # output → every hash a record of this step gave it
        for _step, recorded in store.records.heads([step_id]).values():
            for o in gone:
                if o in recorded:
                    written.setdefault(o, set()).add(recorded[o])
        for o in gone:
            rel = o.rstrip("/")
            full = os.path.join(pipeline.root, rel)
            try:
                check_output(*fence(pipeline.root, o))
            except Escape:
                continue  # never through a link out of the project
            if os.path.islink(full) or states.output_hash(rel) not in written.get(o, ()):
                continue  # not what amelia wrote: someone's file now
            try:
                if remove_output(*fence(pipeline.root, o), dry_run):
                    removed.append(o)
            except OutputInTheWay:
                continue
    return removed


def _still_declared(path: str, current: set) -> bool:
    """The path, or a directory output above it, is declared now."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in current for i in range(len(parts), 0, -1))
