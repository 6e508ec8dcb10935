"""What `amelia watch` watches, and which changes matter. Pure: no thread, no watcher.

Directories are watched, never single files: an editor's atomic save (write a temp file,
rename it over the old one) replaces the file's inode, which a watch on the file would lose.
A literal input's directory is watched alone (`flat`); a glob's literal prefix with every
directory below it (`deep`) when the glob reaches below it. A change matters when a step
reads the path (data) or the pipeline was resolved from it (pipeline); .amelia/, .git/,
every declared output (a step's own writes never trigger it) and editor temp files never do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..paths import SKIP_DIRS, glob_regex, is_glob, literal_prefix, matches

ADDED, MODIFIED, DELETED = 1, 2, 3  # watchfiles.Change values

# Editors' and tools' temporary and backup files: vim (.swp, .swx, 4913), emacs (~, .#x, #x#),
# JetBrains (___jb_tmp___), gedit (.goutputstream-), LibreOffice (.~lock), kate, browsers.
EDITOR_TEMP = re.compile(
    r"(~|\.sw[a-p]|\.swx|\.tmp|\.temp|\.crdownload|\.part|\.kate-swp|___jb_(tmp|old)___)\Z"
    r"|\A(\.#|#.*#\Z|\.~lock|\.goutputstream-|4913\Z|\.DS_Store\Z)")


def editor_temp(name: str) -> bool:
    """A file name editors and tools write beside the file they save (never a real input)."""
    return EDITOR_TEMP.search(name) is not None


def _skipped(rel: str) -> bool:
    """Inside .amelia/ or .git/ (anywhere)."""
    return any(seg in SKIP_DIRS for seg in rel.split("/"))


@dataclass(frozen=True)
class WatchSet:
    """The directories to watch, relative to the root ("" is the root itself)."""

    root: str
    flat: frozenset = frozenset()  # watched alone
    deep: frozenset = frozenset()  # watched with every directory below

    def dirs(self) -> list:
        """Absolute directories to hand the watcher: each flat one, each deep one and every
        directory below it (not .amelia, .git or a symlink); a missing one is stood in for
        by its nearest existing ancestor, so that its creation is seen."""
        out: set = set()
        for rel in sorted(self.flat | self.deep):
            full = os.path.join(self.root, rel) if rel else self.root
            if not os.path.isdir(full):
                out.add(self._existing_ancestor(rel))
            elif rel in self.deep:
                out.update(_walk_dirs(full))
            else:
                out.add(full)
        return sorted(out)

    def _existing_ancestor(self, rel: str) -> str:
        while rel:
            rel = rel.rpartition("/")[0]
            full = os.path.join(self.root, rel) if rel else self.root
            if os.path.isdir(full):
                return full
        return self.root

    def wants_new_dir(self, rel: str) -> bool:
        """A directory that appeared at `rel`: to be watched now (it is, or leads to, a wanted
        directory, or lies below a deep one)."""
        if _skipped(rel):
            return False
        for d in self.flat | self.deep:
            if d == rel or d.startswith(rel + "/") or (d in self.deep and (not d or rel.startswith(d + "/"))):
                return True
        return False


def _walk_dirs(top: str) -> list:
    out, stack = [], [top]
    while stack:
        d = stack.pop()
        out.append(d)
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name not in SKIP_DIRS and e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        except OSError:
            continue
    return out


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _reaches_below(pattern: str) -> bool:
    """Whether a glob matches files below its literal prefix's own directory level."""
    base = literal_prefix(pattern)
    rest = pattern[len(base) + 1:] if base else pattern
    return "/" in rest.rstrip("/") or "**" in rest


@dataclass(frozen=True)
class Changes:
    """One batch of changes that matter, as project-relative paths."""

    pipeline: frozenset = frozenset()  # the pipeline file, or a file it was resolved from
    data: frozenset = frozenset()  # files steps read

    def __bool__(self) -> bool:
        return bool(self.pipeline or self.data)

    def paths(self) -> list:
        return sorted(self.pipeline | self.data)


class Classifier:
    """Which paths a pipeline's watch looks at, and what a change to one of them means."""

    def __init__(self, pipeline, discovered: dict | None = None):
        """discovered: step → the files its depfile named when it last ran (extra inputs)."""
        self.root = pipeline.root
        self.pipeline_file = _rel(pipeline.root, os.path.abspath(pipeline.file))
        self.sources = set()  # files read at resolve time
        self.listings = []  # `glob:PATTERN` sources: a foreach over a listing
        for path, _sha in pipeline.sources[1:]:
            if path.startswith("glob:"):
                self.listings.append(path[len("glob:"):])
            else:
                self.sources.add(path)
        self.outputs = tuple(o for s in pipeline.steps for o in s.outputs)
        self.literal = set()  # literal inputs (a file, or a directory and all below it)
        self.globs = []  # (compiled glob, excludes)
        for s in pipeline.steps:
            for pattern in s.inputs + tuple((discovered or {}).get(s.id, ())):
                if self._produced(pattern):
                    continue  # another step writes it: its change is that step's to make
                if is_glob(pattern):
                    self.globs.append((glob_regex(pattern), s.exclude))
                else:
                    self.literal.add(pattern.rstrip("/"))
        self._inputs = [p for s in pipeline.steps for p in s.inputs + tuple((discovered or {}).get(s.id, ()))
                        if not self._produced(p)]

    def _produced(self, pattern: str) -> bool:
        return not is_glob(pattern) and any(matches(o, pattern.rstrip("/")) for o in self.outputs)

    def watch_set(self) -> WatchSet:
        flat, deep = set(), set()
        if self.pipeline_file is not None:
            flat.add(_parent(self.pipeline_file))
        for rel in self.sources:
            flat.add(_parent(rel))
        for pattern in self.listings:
            (deep if _reaches_below(pattern) else flat).add(literal_prefix(pattern))
        for pattern in self._inputs:
            if is_glob(pattern):
                (deep if _reaches_below(pattern) else flat).add(literal_prefix(pattern))
            elif os.path.isdir(os.path.join(self.root, pattern)):
                deep.add(pattern.rstrip("/"))
            else:
                flat.add(_parent(pattern))
        # a directory watched deep covers everything below it
        covered = lambda d: any(x != d and (not x or d == x or d.startswith(x + "/")) for x in deep)  # noqa: E731
        deep = {d for d in deep if not covered(d)}
        flat = {d for d in flat if d not in deep and not covered(d)}
        return WatchSet(self.root, frozenset(flat), frozenset(deep))

    def kind(self, rel: str, change: int = MODIFIED) -> tuple:
        """(a pipeline change, a data change) for one changed path."""
        if not rel or _skipped(rel):
            return False, False
        pipeline = rel == self.pipeline_file or rel in self.sources or (
            change != MODIFIED and any(matches(p, rel) for p in self.listings))
        if any(matches(o, rel) for o in self.outputs):
            return pipeline, False
        if rel in self.literal or any(rel.startswith(lit + "/") for lit in self.literal if lit):
            return pipeline, True
        if editor_temp(rel.rpartition("/")[2]):
            return pipeline, False
        for rx, exclude in self.globs:
            if rx.match(rel) and not (exclude and any(matches(x, rel) for x in exclude)):
                return pipeline, True
        return pipeline, False

    def classify(self, raw) -> Changes:
        """raw: (change, absolute path) pairs, as watchfiles gives them."""
        pipeline, data = set(), set()
        for change, path in raw:
            rel = _rel(self.root, path)
            if rel is None:
                continue
            p, d = self.kind(rel, change)
            if p:
                pipeline.add(rel)
            if d:
                data.add(rel)
        return Changes(frozenset(pipeline), frozenset(data))


def _rel(root: str, path: str) -> str | None:
    """`path` relative to `root`, with '/', or None outside it."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return None if rel != "." else ""
    return rel.replace(os.sep, "/")
