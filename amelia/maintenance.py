"""`amelia cache verify | gc | clear`, through the store's interfaces (no SQL here)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from .store.objects import TREE_PREFIX

KEEP_LOG_RUNS = 50


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


def gc(store, pipeline, keep: int, prune_other_steps: bool = False) -> Report:
    """Keep the newest `keep` records of each step; drop the rest and orphaned objects.

    Several pipeline files in one repository share one store, so records of steps
    this pipeline does not have are kept unless `prune_other_steps` says otherwise.
    """
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
                referenced.update(store.objects.read_tree(digest).values())
            except (OSError, ValueError):
                pass
        else:
            referenced.add(digest)
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
    counts = {"records dropped": len(drop), "objects removed": removed, "log dirs removed": len(old_logs),
              "file states dropped": len(gone)}
    return Report("cache gc", counts)


def clear(store) -> None:
    store.clear_cache()
