"""What a collection holds, recorded beside it: the manifest of one (source, model) collection.

    {"format": 1, "source": "docs", "model": "<as configured>", "embedder": "<identity>",
     "dim": 384, "collection": "...",
     "documents": {name: {"sha256", "chunks", "recipe", "format", "skipped"?}},
     "pending":   {name: {"sha256", "chunks", "recipe"}}}

`documents` are fully in the collection (every one of their points). `pending` are being
written: recorded before the first of their points is upserted, so an interrupted run's
points can be found and deleted (their ids are computable) instead of lingering as
duplicates. `recipe` is what, besides the bytes, decides a document's chunks and vectors
(chunk size, overlap, converter version, model digest): a different recipe re-indexes.

The embedded store keeps manifests inside its directory (deleting it resets both); a server's
are under <store_dir>/rag/manifests/<hash of url>/. Standard library only: `is_indexed` and
the no-change path read manifests without importing qdrant_client or fastembed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import uuid

__all__ = [
    "collection_name", "manifest_dir", "manifest_path", "point_id", "point_ids",
    "load", "save", "empty", "find", "store_path",
]

FORMAT = 1
_NAMESPACE = uuid.UUID("6f1c8a52-3a57-4c1e-9d55-0a3e0d1d2b61")  # fixed: ids are stable across versions


def store_path(location, store_dir: str) -> str:
    """The embedded store's directory (location.path, default <store_dir>/qdrant)."""
    return location.path or os.path.join(store_dir, "qdrant")


def _slug(text: str, limit: int) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "x"
    if s != text:
        # The slug lost something: a short hash keeps different names apart.
        s += "_" + hashlib.sha256(text.encode()).hexdigest()[:6]
    return s


def collection_name(source: str, embedder: str, dim: int) -> str:
    """amelia_<source>_<model>_<dim>, in the characters Qdrant accepts everywhere."""
    return f"amelia_{_slug(source, 60)}_{_slug(embedder, 60)}_{int(dim)}"


def _source_prefix(source: str) -> str:
    return f"amelia_{_slug(source, 60)}_"


def manifest_dir(location, store_dir: str) -> str:
    if location.url:
        key = hashlib.sha256(location.url.encode()).hexdigest()[:12]
        return os.path.join(store_dir, "rag", "manifests", key)
    return os.path.join(store_path(location, store_dir), "amelia")


def manifest_path(location, store_dir: str, collection: str) -> str:
    return os.path.join(manifest_dir(location, store_dir), collection + ".json")


def point_id(name: str, sha256: str, size: int, overlap: int, index: int) -> str:
    """A chunk's id from its content: re-indexing the same chunk overwrites, never duplicates."""
    return str(uuid.uuid5(_NAMESPACE, f"{name}\n{sha256}\n{size}\n{overlap}\n{index}"))


def point_ids(name: str, entry: dict) -> list[str]:
    """The ids of a manifest entry's points."""
    size, overlap = recipe_chunking(entry["recipe"])
    return [point_id(name, entry["sha256"], size, overlap, i) for i in range(int(entry["chunks"]))]


def recipe(size: int, overlap: int, converter: int, model_digest: str = "") -> str:
    return f"{size}/{overlap}/{converter}/{model_digest}"


def recipe_chunking(r: str) -> tuple[int, int]:
    size, overlap = r.split("/")[:2]
    return int(size), int(overlap)


def empty(source: str, model: str, embedder: str, dim: int, collection: str) -> dict:
    return {
        "format": FORMAT, "source": source, "model": model, "embedder": embedder, "dim": dim,
        "collection": collection, "documents": {}, "pending": {},
    }


def load(path: str) -> dict | None:
    """The manifest at `path`, or None when missing or unreadable (it is then rebuilt)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if not isinstance(data.get("documents"), dict) or not isinstance(data.get("pending"), dict):
        return None
    return data


def save(path: str, data: dict) -> None:
    """Atomically: a reader (or a crash) sees the old manifest or the new one, never half."""
    from ..atomic import write_text

    write_text(path, json.dumps(data, separators=(",", ":"), sort_keys=True), durable=True)


def find(source: str, model: str, location, store_dir: str) -> tuple[str, dict] | None:
    """The manifest of `source` indexed with `model` (as configured), found without knowing
    the model's identity or dimension (that would mean loading it)."""
    d = manifest_dir(location, store_dir)
    for path in sorted(glob.glob(os.path.join(glob.escape(d), glob.escape(_source_prefix(source)) + "*.json"))):
        data = load(path)
        if data and data.get("source") == source and data.get("model") == model:
            return path, data
    return None
