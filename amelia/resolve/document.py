"""Documents: the files a pipeline is made of, each with its own data, source map and scope.

A pipeline is a graph of documents (go-task's taskfile graph is the model): the root
document is the file the user named; `include:` (a later version) adds one document
per recipe, namespaced, with the params it is given. Each document is resolved in its
own scope (params, env, models) and every error is located in its own file. Today the
graph holds exactly the root document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import PipelineError, raise_all
from ..loader import Loaded
from ..paths import find_root


@dataclass(frozen=True)
class Document:
    file: str  # as the user named it, for messages
    loaded: Loaded  # the data, and where each key came from
    namespace: str = ""  # "" for the root document; an include's `as:` name
    params: dict = field(default_factory=dict)  # its own param scope: name → value
    env_names: tuple = ()  # the env vars its templates may read
    models: dict = field(default_factory=dict)  # name → ModelConfig, its `models:` and `default`
    file_params: frozenset = frozenset()  # the params its `params_files` gave (read as leaves)
    stand_ins: frozenset = frozenset()  # params holding a placeholder (checking only): any field goes
    sources: tuple = ()  # (path, sha256) of the params files it read
    params_unread: bool = False  # a params file could not be read: its names are unknown, not wrong
    overridden: frozenset = frozenset()  # param names (dotted leaves too) given with -p
    # An included recipe: the folder its files (prompt, schema, params files) are read
    # from, and the include lines that brought it in ("amelia.yaml:4 (as review)"); the
    # root document reads from the project root and was included by nobody.
    files_root: str = ""
    included_from: str = ""

    @property
    def data(self) -> dict:
        return self.loaded.data

    @property
    def source(self):
        return self.loaded.source

    def step_id(self, local: str) -> str:
        """A step's id in the pipeline: namespaced in an included document."""
        return f"{self.namespace}.{local}" if self.namespace else local

    def steps(self) -> dict:
        return self.data.get("steps") or {}


@dataclass(frozen=True)
class DocumentGraph:
    """The documents of a pipeline, the root first, and which one includes which."""

    documents: tuple  # Document
    includes: tuple = ()  # (including namespace, included namespace)

    @property
    def root(self) -> Document:
        return self.documents[0]


def project_root(data: dict, file: str, given: str | None = None) -> str:
    """`root:` in the file, relative to it; else the git work tree holding it, else its directory."""
    if given:
        return given
    declared = data.get("root")
    if declared:
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(file)), declared))
    return find_root(file)


class Problems:
    """Every error found while resolving, each located in its document; raised at once."""

    def __init__(self, top_file: str = ""):
        self.errors: list = []
        self._seen: set = set()
        self.top_file = top_file  # its errors are listed first

    def add(self, source, message: str, path: tuple, hint: str = "", loc=None, included_from: str = "") -> None:
        # A pipeline-wide setting (`shell:`) is read for each step: its error is said once.
        location = loc or source.locate(path)
        said = (message, location.file, location.line, location.col, location.path)
        if said not in self._seen:
            self._seen.add(said)
            self.errors.append(PipelineError(message, location, hint, included_from))

    def extend(self, errors) -> None:
        """Errors found by another part (a recipe's YAML or schema), as they are."""
        for e in errors:
            self.errors.append(e)

    def reporter(self, doc_or_source, included_from: str | None = None):
        """err(message, path, hint="", loc=None) for one document (or a file's source map;
        included_from: the include lines of a recipe's file)."""
        source = getattr(doc_or_source, "source", doc_or_source)
        chain = getattr(doc_or_source, "included_from", "") if included_from is None else included_from

        def err(message: str, path: tuple, hint: str = "", loc=None) -> None:
            self.add(source, message, path, hint, loc, chain)
        return err

    def __len__(self) -> int:
        return len(self.errors)

    def raise_all(self) -> None:
        """All errors found so far, in file order."""
        files: dict = {self.top_file: 0}  # the top file, then the others as their errors were found
        for e in self.errors:
            files.setdefault(e.location.file if e.location else "", len(files))
        self.errors.sort(key=lambda e: (files[e.location.file], e.location.line, e.location.col)
                         if e.location else (0, 0, 0))
        raise_all(self.errors)
