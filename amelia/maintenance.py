"""`amelia cache verify | gc | clear`, through the store's interfaces (no SQL here)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from .store.objects import TREE_PREFIX, object_name

KEEP_LOG_RUNS = 50
# A temp file in objects/tmp this old is left over from a writer that died (a put
# takes seconds, not an hour); a younger one may be a running writer's: keep it.
STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class Report:
    title: str
    counts: dict
    bad: tuple = ()
    details: tuple = field(default_factory=tuple)

    def render(self, as_json: bool) -> str:
        if as_json:
            return json.dumps({"counts": self.counts, "bad": list(self.bad)}, indent=2) + "\n"
        lines = [f"{self.title}: " + ", ".join(f"{v} {k}" for k, v in self.counts.items())]
        lines += [f"  corrupt: {b}" for b in self.bad]
        return "\n".join(lines) + "\n"


def _store_errors(fn):
    """An OSError on a file of the store (read-only, full disk) is a StoreProblem naming it."""
    import functools

    @functools.wraps(fn)
    def wrapped(store, *args, **kwargs):
        try:
            return fn(store, *args, **kwargs)
        except OSError as e:
            from .store.problems import os_problem

            raise os_problem(e.filename or store.dir, e) from e

    return wrapped


@_store_errors
def verify(store) -> Report:
    """Re-hash every object; list the ones whose bytes changed, and records that lost objects."""
    bad = store.objects.verify()
    objects = sum(1 for _ in store.objects.iter_objects())
    # A corrupt object must never be restored: drop it, so its step re-runs.
    for digest in bad:
        store.objects.remove(digest)
    missing = 0  # record outputs that can no longer be restored (including those just dropped)
    for head in store.records.all_outputs():
        for digest in head.outputs.values():
            if not store.objects.can_restore(digest):
                missing += 1
    counts = {"objects checked": objects, "corrupt (removed)": len(bad), "missing": missing}
    return Report("cache verify", counts, tuple(bad))


@_store_errors
def gc(store, pipeline, keep: int, prune_other_steps: bool = False) -> Report:
    """Keep the newest `keep` records of each step; drop the rest and orphaned objects.

    Several pipeline files in one repository share one store, so records of steps
    this pipeline does not have are kept unless `prune_other_steps` says otherwise.
    Temp files older than STALE_TEMP_SECONDS in objects/tmp (a writer that died) go too.
    """
    if keep < 1:  # 0 or less would drop every record and then every object
        from .errors import UsageError

        raise UsageError(f"--keep must be at least 1, got {keep}",
                         hint="`amelia cache clear` forgets every cached result")
    current = {s.id for s in pipeline.steps}
    by_step: dict = {}
    drop = []
    live = set()
    for key, step, outputs in store.records.all_outputs():  # newest first
        kept = by_step.setdefault(step, [])
        if (step in current or not prune_other_steps) and len(kept) < keep:
            kept.append(key)
            live.update(outputs.values())
        else:
            drop.append(key)
    store.records.delete(drop)
    referenced = set()
    for digest in live:
        if digest.startswith(TREE_PREFIX):
            referenced.add(digest[len(TREE_PREFIX):])
            try:
                referenced.update(object_name(h) for h in store.objects.read_tree(digest).values())
            except (OSError, ValueError):
                pass
        else:
            referenced.add(object_name(digest))
    removed = 0
    for digest, _path in list(store.objects.iter_objects()):
        if digest not in referenced:
            store.objects.remove(digest)
            removed += 1
    logs = os.path.join(store.dir, "logs")
    old_logs = sorted(os.listdir(logs))[:-KEEP_LOG_RUNS] if os.path.isdir(logs) else []
    for name in old_logs:
        shutil.rmtree(os.path.join(logs, name), ignore_errors=True)
    # The file-state memo is read whole on every run: forget files that are gone.
    gone = [p for p in store.memo.load() if not os.path.lexists(os.path.join(store.root, p))]
    store.memo.delete(gone)
    temps = remove_stale_temps(os.path.join(store.objects.dir, "tmp"))
    counts = {"records dropped": len(drop), "objects removed": removed, "log dirs removed": len(old_logs),
              "file states dropped": len(gone), "temp files removed": temps}
    return Report("cache gc", counts)


def remove_stale_temps(tmp_dir: str, older_than: float = STALE_TEMP_SECONDS, now: float | None = None) -> int:
    """Remove the files in tmp_dir not modified for `older_than` seconds; how many went.
    A writer fills its temp file as it goes, so its mtime stays fresh while it writes."""
    import time

    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:  # its writer finished (renamed it) or gave up meanwhile
            pass
    return removed


@_store_errors
def clear(store) -> None:
    store.clear_cache()
