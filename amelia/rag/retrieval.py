"""Retrieval from a source's collection: the query embedded with the source's model, the
nearest chunks (cosine), optionally thresholded and filtered by metadata.

`filter:` is a mapping of
    name:    a document (path or URL) or a list of them
    dir:     documents under a directory (or a list of directories)
    format:  the document's converted format (markdown, text, html, pdf, docx, pptx, xlsx)
    heading: a heading in the chunk's heading path
Keys combine with AND, a list's items with OR. `filter_problem` validates one (for a located
error); `is_indexed` reads a manifest only (no qdrant_client or fastembed import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import manifest as mf
from .errors import RagError
from .sources import SourceConfig

__all__ = ["Hit", "search", "filter_problem", "is_indexed", "FILTER_FIELDS"]

# filter key → payload field, and what one value is called in messages
FILTER_FIELDS = {
    "name": ("name", "a path or a list of paths"),
    "dir": ("dirs", "a directory or a list of directories"),
    "format": ("format", "a format (such as pdf) or a list of formats"),
    "heading": ("headings", "a heading or a list of headings"),
}


@dataclass(frozen=True)
class Hit:
    source: str
    name: str  # the document: project-relative path or URL
    chunk: int  # the chunk's index in its document
    headings: tuple
    text: str
    score: float  # cosine similarity, higher is closer
    id: str
    content_hash: str  # sha256 of the chunk text


def filter_problem(filter: object) -> str | None:
    """What is wrong with a `filter:` mapping, or None when it is usable."""
    if not isinstance(filter, dict):
        return "filter must be a mapping of name, dir, format or heading"
    for key, value in filter.items():
        if key not in FILTER_FIELDS:
            known = ", ".join(sorted(FILTER_FIELDS))
            return f"unknown filter field {key!r} (known: {known})"
        what = FILTER_FIELDS[key][1]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            return f"filter {key} must be {what}"
    return None


def _values(key: str, value) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if key in ("name", "dir"):
        # How people write paths; the payload holds normalised project-relative ones.
        out = []
        for v in values:
            v = v.strip()
            while v.startswith("./"):
                v = v[2:]
            out.append(v.rstrip("/") if "://" not in v or key == "dir" else v)
        return out
    if key == "format":
        return [v.strip().lower() for v in values]
    return [v.strip() for v in values]


def _qdrant_filter(filter: dict | None):
    if not filter:
        return None
    from qdrant_client import models

    must = []
    for key, value in filter.items():
        values = _values(key, value)
        field = FILTER_FIELDS[key][0]
        match = models.MatchValue(value=values[0]) if len(values) == 1 else models.MatchAny(any=values)
        must.append(models.FieldCondition(key=field, match=match))
    return models.Filter(must=must)


def search(config: SourceConfig, store_dir: str, query: str, top_k: int = 5,
           score_threshold: float | None = None, filter: dict | None = None) -> list[Hit]:
    """The `top_k` chunks nearest to `query`, best first. RagError when the source has not
    been indexed (with this model), or for a bad filter."""
    problem = filter_problem(filter) if filter else None
    if problem:
        raise RagError(problem)
    from .embedder import load_embedder
    from .vectors import open_store

    root = os.path.dirname(os.path.abspath(store_dir))
    embedder = load_embedder(config.model, root)
    collection = mf.collection_name(config.name, embedder.name, embedder.dim)
    if not os.path.exists(mf.manifest_path(config.location, store_dir, collection)):
        raise _not_indexed(config)
    store = open_store(config.location, mf.store_path(config.location, store_dir))
    if not store.exists(collection):
        raise _not_indexed(config)
    vector = embedder.embed_query(query)
    found = store.search(collection, vector, int(top_k), score_threshold, _qdrant_filter(filter))
    return [
        Hit(
            source=config.name,
            name=str(f.payload.get("name", "")),
            chunk=int(f.payload.get("chunk", 0)),
            headings=tuple(f.payload.get("headings") or ()),
            text=str(f.payload.get("text", "")),
            score=f.score,
            id=f.id,
            content_hash=str(f.payload.get("content_hash", "")),
        )
        for f in found
    ]


def _not_indexed(config: SourceConfig) -> RagError:
    return RagError(
        f"source {config.name!r} has not been indexed with model {config.model}",
        f"run `amelia index --source {config.name}`",
    )


def is_indexed(config: SourceConfig, store_dir: str) -> bool:
    """Cheap: a manifest of this source with this model exists."""
    return mf.find(config.name, config.model, config.location, store_dir) is not None
