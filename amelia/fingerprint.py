"""What a step's result depends on, read from disk cheaply (its key is keys.py's).

File hashes are memoized by (size, mtime_ns, inode), as git's index does, so an
unchanged tree is stat'ed, not read. A file modified moments ago is not memoized
(it could change again within the clock's resolution without its mtime moving).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import paths
from .spec import Pipeline, Step
from .store.objects import hash_file, tree_digest, with_mode

RACY_NS = 100_000_000  # 0.1 s
COARSE_RACY_NS = 2_000_000_000  # an mtime in whole seconds: the clock may be that coarse


class FileStates:
    """The stat → hash memo for one run; `updates` are written back afterwards."""

    def __init__(self, root: str, memo: dict):
        self.root = root
        self.memo = memo
        self.updates: dict = {}
        self.now_ns = time.time_ns()

    def hash(self, rel: str, st=None) -> str | None:
        full = os.path.join(self.root, rel)
        if st is None:
            try:
                st = os.stat(full)
            except (FileNotFoundError, NotADirectoryError):
                return None
        if (st.st_mode & 0o170000) == 0o040000:
            return self.tree(rel)
        m = self.memo.get(rel)
        if m is not None and m[0] == st.st_size and m[1] == st.st_mtime_ns and m[2] == st.st_ino:
            return m[3]
        digest = hash_file(full)
        entry = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
        self.memo[rel] = entry
        # Racy: a file modified just before it was read could change again without its
        # mtime moving. Compare with the time of reading (a step may write it mid-run),
        # and allow for filesystems that keep whole seconds only.
        window = RACY_NS if st.st_mtime_ns % 1_000_000_000 else COARSE_RACY_NS
        if time.time_ns() - st.st_mtime_ns > window:
            self.updates[rel] = entry
        return digest

    def tree(self, rel: str) -> str | None:
        """A directory's identity, as ObjectStore.put_tree would name it (modes included)."""
        base = rel.rstrip("/")
        files = paths.expand(self.root, base, escape_check=False)
        if not files and not os.path.isdir(os.path.join(self.root, base)):
            return None
        manifest = {p[len(base) + 1:]: with_mode(self.hash(p, st), st.st_mode) for p, st in files}
        return tree_digest(manifest)

    def output_hash(self, rel: str) -> str | None:
        """An output's digest as its record holds it: an executable file is marked."""
        try:
            st = os.stat(os.path.join(self.root, rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        digest = self.hash(rel, st)
        return digest if digest is None or (st.st_mode & 0o170000) == 0o040000 else with_mode(digest, st.st_mode)

    def forget(self, rel: str) -> None:
        self.memo.pop(rel, None)


@dataclass(frozen=True)
class Fingerprint:
    """Phase one: a step's file inputs and its outputs' current state, from disk.

    `inputs` maps a path to its hash, or to None when another step produces it
    (that hash is the producer's to give, see `cache_key`).
    """

    inputs: dict = field(default_factory=dict)
    produced_by: dict = field(default_factory=dict)  # path → producing step
    outputs: dict = field(default_factory=dict)  # output path → hash on disk, or None
    missing: tuple = ()
    error: str = ""
    discovered: dict = field(default_factory=dict)  # depfile path → hash, or "missing"


def discovered_paths(step: Step, previous) -> tuple:
    """The files the step's depfile named when it last ran (ninja's model: discovered
    dependencies count from the next decision on); () for a step without a depfile."""
    if not step.depfile or previous is None:
        return ()
    material = previous.get(step.id)
    return tuple((material or {}).get("discovered") or ())


def fingerprint(step: Step, states: FileStates, pipeline: Pipeline, discovered: tuple = ()) -> Fingerprint:
    # Only the steps it depends on can produce its inputs (overlap is a dependency).
    by_id = pipeline.by_id()
    files_by, dirs_by = {}, []
    for dep in step.data_needs:
        for o in by_id[dep].outputs:
            if o.endswith("/"):
                dirs_by.append((o, dep))
            else:
                files_by[o] = dep
    inputs: dict = {}
    made_by: dict = {}
    missing = []
    try:
        for pattern in step.inputs:
            matched = False
            # Whole produced directories the pattern reaches are one input each.
            for d, producer in dirs_by:
                if paths.overlaps(pattern, d):
                    inputs[d] = None
                    made_by[d] = producer
                    matched = True
            dir_prefixes = tuple(d for d in made_by if d.endswith("/"))
            for rel, st in paths.expand(states.root, pattern):
                if dir_prefixes and rel.startswith(dir_prefixes):
                    continue
                if step.exclude and any(paths.matches(x, rel) for x in step.exclude):
                    continue
                matched = True
                producer = files_by.get(rel)
                if producer:
                    inputs[rel] = None
                    made_by[rel] = producer
                else:
                    inputs[rel] = states.hash(rel, st)
            for out, producer in files_by.items():
                if out not in inputs and paths.matches(pattern, out) and not (
                        step.exclude and any(paths.matches(x, out) for x in step.exclude)):
                    inputs[out] = None  # not on disk yet, or deleted: its producer says
                    made_by[out] = producer
                    matched = True
            if not matched and not paths.is_glob(pattern) and not os.path.isdir(
                    os.path.join(states.root, pattern)):  # an empty directory is there
                missing.append(pattern)
    except ValueError as e:  # a symlink that leaves the project
        return Fingerprint(error=str(e))
    outputs = {o: states.output_hash(o.rstrip("/")) for o in step.outputs}
    found = {p: states.hash(p) or MISSING for p in discovered}
    return Fingerprint(inputs, made_by, outputs, tuple(missing), discovered=found)


MISSING = "missing"  # a discovered dependency that is gone: the step must run again

