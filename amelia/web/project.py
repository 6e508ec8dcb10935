"""What the ui serves from: one project (its root and store) and the pipeline files in it.

URLs never carry a path that is opened: a pipeline is named by its project-relative path
and looked up among the files found here; a run by its id, looked up in the history.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MAX_PIPELINE_BYTES = 1024 * 1024
MAX_FILES = 400  # candidate files looked at when listing pipelines
SKIP_DIRS = {"node_modules", "__pycache__", "venv", "build", "dist", "site-packages"}
DECLARES = re.compile(rb"(?m)^amelia:")  # a pipeline file has `amelia:` at its root
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


@dataclass(frozen=True)
class PipelineRef:
    name: str  # project-relative, with '/': what URLs and forms carry
    path: str  # the file, absolute
    file: str  # what the engine is given (and runs record): relative to the cwd when under it


class UiProject:
    def __init__(self, root: str, first: str | None = None):
        from ..store import Store

        self.root = os.path.realpath(root)
        self.first = os.path.realpath(first) if first else None
        self.store = Store(self.root)

    def close(self) -> None:
        self.store.close()

    # -- pipelines ------------------------------------------------------------------------
    def pipelines(self) -> list:
        """The pipeline files of the project: at its top and one folder down (not hidden,
        not symlinked out of it); the file `ui` was given first, then amelia.yaml."""
        found = []
        seen = 0
        for folder in [self.root] + _folders(self.root):
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if not entry.name.endswith((".yaml", ".yml")) or entry.name.startswith("."):
                    continue
                seen += 1
                if seen > MAX_FILES:
                    break
                path = os.path.realpath(entry.path)
                if not _inside(path, self.root) or not _declares(path):
                    continue
                found.append(self._ref(path))
        if self.first and _inside(self.first, self.root) and all(p.path != self.first for p in found):
            found.append(self._ref(self.first))

        def rank(p):
            return (p.path != self.first, p.name not in ("amelia.yaml", "amelia.yml"), p.name.count("/"), p.name)

        return sorted(found, key=rank)

    def _ref(self, path: str) -> PipelineRef:
        name = os.path.relpath(path, self.root).replace(os.sep, "/")
        here = os.path.realpath(os.getcwd())
        return PipelineRef(name, path, os.path.relpath(path, here) if _inside(path, here) else path)

    def pipeline_ref(self, name: str | None) -> PipelineRef | None:
        """The pipeline named `name` (a listed one only), or the first when name is empty."""
        refs = self.pipelines()
        if not name:
            return refs[0] if refs else None
        return next((p for p in refs if p.name == name), None)

    def load(self, ref: PipelineRef):
        """The resolved pipeline (through the store's resolve cache); AmeliaError if invalid."""
        from .. import api
        from ..errors import UsageError

        pipeline = api.reload(self.store, ref.file)
        if os.path.realpath(pipeline.root) != self.root:
            raise UsageError(f"{ref.name} belongs to another project ({pipeline.root})",
                             hint="start `amelia ui` in that project")
        return pipeline

    def pipeline_of_run(self, run: dict):
        """The listed pipeline a run ran (by its file, else its name), resolved; None if gone
        or invalid now."""
        from ..errors import AmeliaError

        refs = self.pipelines()
        file = run.get("file") or ""
        paths = {os.path.realpath(os.path.join(base, file)) for base in (self.root, os.getcwd())}
        ref = next((p for p in refs if p.path in paths), None)
        candidates = [ref] if ref else refs
        for candidate in candidates:
            try:
                pipeline = self.load(candidate)
            except AmeliaError:
                continue
            if pipeline.name == run.get("pipeline"):
                return pipeline
        return None

    # -- runs -----------------------------------------------------------------------------
    def run(self, run_id: str) -> dict | None:
        """The run with exactly this id, or None (an id is matched, never used as a path)."""
        if not RUN_ID.match(run_id or ""):
            return None
        return self.store.history.run(run_id)


def _folders(root: str) -> list:
    try:
        return [e.path for e in sorted(os.scandir(root), key=lambda e: e.name)
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".") and e.name not in SKIP_DIRS]
    except OSError:
        return []


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _declares(path: str) -> bool:
    try:
        if os.path.getsize(path) > MAX_PIPELINE_BYTES:
            return False
        with open(path, "rb") as f:
            return DECLARES.search(f.read(MAX_PIPELINE_BYTES)) is not None
    except OSError:
        return False
