"""Qdrant behind a small interface: the embedded store (`QdrantClient(path=...)`) or a server.

The embedded store takes a file lock on its directory, so a process opens it once: one
client per directory (per url for a server), shared by every thread and closed at exit.
The embedded client is not thread-safe (plain dicts and one SQLite connection), so its calls
are serialised by a lock; a server's HTTP client needs none. Every failure of the store
surfaces as a RagError naming the store, with a hint.

qdrant_client is imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import RagError
from .sources import Location

__all__ = ["Found", "Store", "open_store", "close_all", "SERVER_BATCH"]

SERVER_BATCH = 256  # points per upsert request to a server (~3 MB of JSON at 384 dims)
_SCROLL_PAGE = 1024


@dataclass(frozen=True)
class Found:
    """One search result: the point's id, its cosine similarity, its payload."""

    id: str
    score: float
    payload: dict


class Store:
    """One open Qdrant (embedded directory or server). Obtain it with `open_store`."""

    def __init__(self, client, label: str, embedded: bool):
        self._client = client
        self.label = label  # what error messages call it: the directory or the url
        self.embedded = embedded
        # The embedded client mutates shared dicts and one SQLite connection: one caller at a time.
        self._lock = threading.RLock() if embedded else contextlib.nullcontext()

    # -- collections -------------------------------------------------------------------
    def exists(self, collection: str) -> bool:
        with self._call():
            return bool(self._client.collection_exists(collection))

    def create(self, collection: str, dim: int) -> None:
        from qdrant_client import models

        with self._call():
            self._client.create_collection(
                collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
            )

    def drop(self, collection: str) -> None:
        with self._call():
            self._client.delete_collection(collection)

    def count(self, collection: str) -> int:
        with self._call():
            return int(self._client.count(collection, exact=True).count)

    # -- points ------------------------------------------------------------------------
    def upsert(self, collection: str, ids: list[str], vectors: list, payloads: list[dict]) -> None:
        """Write points; returns when they are stored (a server is asked to wait)."""
        from qdrant_client import models

        step = len(ids) if self.embedded else SERVER_BATCH
        for i in range(0, len(ids), step or 1):
            batch = models.Batch(
                ids=ids[i : i + step],
                vectors=[_floats(v) for v in vectors[i : i + step]],
                payloads=payloads[i : i + step],
            )
            with self._call():
                self._client.upsert(collection, points=batch, wait=True)

    def delete(self, collection: str, ids: list[str]) -> None:
        from qdrant_client import models

        for i in range(0, len(ids), 4096):
            with self._call():
                self._client.delete(
                    collection, points_selector=models.PointIdsList(points=ids[i : i + 4096]), wait=True
                )

    def scroll(self, collection: str, fields: list[str]) -> Iterator[tuple[str, dict]]:
        """(id, payload restricted to `fields`) of every point, without vectors."""
        offset = None
        while True:
            with self._call():
                records, offset = self._client.scroll(
                    collection, limit=_SCROLL_PAGE, offset=offset, with_payload=fields, with_vectors=False
                )
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return

    def search(self, collection: str, vector: list[float], limit: int,
               score_threshold: float | None = None, query_filter=None) -> list[Found]:
        if self.embedded:
            import numpy as np

            # The embedded client deep-copies its query: one array copies in one call,
            # a list of 384 floats in 385.
            query = np.asarray(vector, dtype=np.float32)
        else:
            query = _floats(vector)
        with self._call():
            result = self._client.query_points(
                collection,
                query=query,
                limit=limit,
                score_threshold=score_threshold,
                query_filter=query_filter,
                with_payload=True,
                with_vectors=False,
            )
        return [Found(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(Exception):
                self._client.close()

    @contextlib.contextmanager
    def _call(self):
        """Serialise (embedded) and translate the store's failures into RagError."""
        with self._lock:
            try:
                yield
            except RagError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure of the store has the same remedy
                raise _problem(self, e) from e


def _floats(v) -> list[float]:
    # numpy arrays (fastembed) → plain floats: the server's JSON and the local pickles take lists.
    return v.tolist() if hasattr(v, "tolist") else list(v)


def _problem(store: Store, e: Exception) -> RagError:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if store.embedded:
        return RagError(
            f"the embedded Qdrant store at {store.label} failed: {text}",
            "delete that directory to rebuild the index from the sources (`amelia index`)",
        )
    return RagError(
        f"the Qdrant server at {store.label} failed: {text}",
        "check that the server is running and reachable, and its API key",
    )


BUSY_WAIT = 5.0  # seconds to wait for another process to let go of the embedded store
_stores: dict[tuple, Store] = {}
_registry_lock = threading.Lock()
_atexit_registered = False


def open_store(location: Location, default_path: str = "") -> Store:
    """The process's shared Store for `location` (embedded at location.path, or default_path
    when that is empty; or the server at location.url)."""
    global _atexit_registered
    if location.url:
        key = ("url", location.url, location.api_key_env)
    else:
        path = location.path or default_path
        if not path:
            raise RagError("no location for the embedded Qdrant store")
        key = ("path", os.path.realpath(path))
    with _registry_lock:
        store = _stores.get(key)
        if store is None:
            store = _open(location, key)
            _stores[key] = store
            if not _atexit_registered:
                atexit.register(close_all)
                _atexit_registered = True
        return store


def _open(location: Location, key: tuple) -> Store:
    from qdrant_client import QdrantClient

    if key[0] == "url":
        api_key = None
        if location.api_key_env:
            api_key = os.environ.get(location.api_key_env)
            if not api_key:
                raise RagError(
                    f"the environment variable {location.api_key_env} (the Qdrant server's API key) is not set",
                    f"set {location.api_key_env}, or put it in the project's .env",
                )
        try:
            # No version probe at construction: the first real call reports an unreachable server.
            client = QdrantClient(url=location.url, api_key=api_key, timeout=60, check_compatibility=False)
        except Exception as e:  # noqa: BLE001 - a malformed url
            raise RagError(f"cannot use the Qdrant server at {location.url}: {e}") from e
        return Store(client, location.url, embedded=False)
    path = key[1]
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        try:
            os.makedirs(path, exist_ok=True)
            # Our lock serialises every call, so SQLite's same-thread check is not needed.
            return Store(QdrantClient(path=path, force_disable_check_same_thread=True), path, embedded=True)
        except RuntimeError as e:
            if "already accessed" not in str(e):
                raise RagError(f"cannot open the embedded Qdrant store at {path}: {e}") from e
            if time.monotonic() < deadline:  # a query, a chat, `amelia watch` between runs: brief
                time.sleep(0.1)
                continue
            raise RagError(
                f"the embedded Qdrant store at {path} is in use by another process",
                "only one process at a time can open the embedded store: wait for the other amelia "
                "(index, run, chat) to finish, or use a Qdrant server (`qdrant: {url: ...}`)",
            ) from e
        except Exception as e:  # noqa: BLE001 - corrupt meta.json, permissions, ...
            raise RagError(
                f"cannot open the embedded Qdrant store at {path}: {e}",
                "delete that directory to rebuild the index from the sources (`amelia index`)",
            ) from e


def close_all() -> None:
    """Close every open store (at exit; tests call it before another process opens one)."""
    with _registry_lock:
        stores = list(_stores.values())
        _stores.clear()
    for s in stores:
        s.close()
