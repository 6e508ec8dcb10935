"""Bring one source's collection up to date with its documents, incrementally (DESIGN §5).

An unchanged document (same bytes, same recipe: chunking, converter, model) costs nothing:
not converted, not embedded. A new or changed one is converted (cached by content), chunked,
embedded and upserted, then its old points are deleted; a removed one's points are deleted.
Point ids derive from content (manifest.point_id), and the manifest records which
documents are fully in and which are being written (`pending`), so a run killed at any point
leaves no duplicates and the next run completes it.

Throughput: chunks of many documents are embedded together in batches of EMBED_BATCH
(sorted by length inside a group, which cuts the padding each batch pays for), while a
writer thread upserts the previous group: the store's writes overlap the model's work.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field

from . import manifest as mf
from .errors import RagError
from .sources import Document, SourceConfig

__all__ = ["IndexReport", "index_source", "EMBED_BATCH", "GROUP_CHUNKS"]

EMBED_BATCH = 64  # chunks per model call, at most
BATCH_CHARS = 4 * 800  # padded characters per model call, at most: ~10 MB of peak memory per
# 800 characters, and no faster in bigger batches (2 cores: 78 chunks/s at 4, 76 at 16)
GROUP_CHUNKS = 256  # chunks per group: one manifest commit each; what Ctrl-C or kill -9 can waste (~3 s)


@dataclass(frozen=True)
class IndexReport:
    source: str
    collection: str
    added: tuple
    changed: tuple
    removed: tuple
    unchanged: int
    skipped: tuple  # (name, reason), every run while the document stays as it is
    notes: tuple  # (name, note) of the documents converted by this run
    chunks_embedded: int
    chunks_total: int
    seconds: float
    cancelled: bool = False


def index_source(config: SourceConfig, documents: list[Document], store_dir: str,
                 progress=None, cancelled=None) -> IndexReport:
    """Index `documents` (the whole of the source: others are removed) into the source's
    collection. `progress(done_docs, total_docs, name)` and `cancelled() -> bool` may be None."""
    t0 = time.monotonic()
    docs = _unique(documents)
    root = os.path.dirname(os.path.abspath(store_dir))
    recipe = _recipe(config, root)
    found = mf.find(config.name, config.model, config.location, store_dir)
    if found is not None and _up_to_date(found[1], docs, recipe):
        # Nothing to do: decided from the manifest alone, without loading the model or the store.
        m = found[1]
        if progress and docs:
            progress(len(docs), len(docs), docs[-1].name)
        return _report(config, m, docs, [], [], [], [], 0, t0, False)
    with _collection_lock(config, store_dir):
        return _Run(config, docs, store_dir, root, recipe, progress, cancelled, t0).go()


def _unique(documents: list[Document]) -> list[Document]:
    seen: dict[str, Document] = {}
    for d in documents:
        seen.setdefault(d.name, d)
    return list(seen.values())


def _recipe(config: SourceConfig, root: str) -> str:
    from .convert import CONVERTER_VERSION

    return mf.recipe(config.chunk_size, config.overlap, CONVERTER_VERSION, _model_digest(config.model, root))


def _model_digest(model: str, root: str) -> str:
    """For a model given as a directory: its files' sizes and times, so replacing the model
    re-embeds everything (its name stays the same). Empty for named models."""
    from .embedder import model_files

    files = model_files(model, root)
    if not files:
        return ""
    import hashlib

    h = hashlib.sha256()
    for rel in sorted(files):
        try:
            st = os.stat(os.path.join(root, rel))
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{rel}\0missing\n".encode())
    return h.hexdigest()[:16]


def _up_to_date(m: dict, docs: list[Document], recipe: str) -> bool:
    entries = m["documents"]
    if m["pending"] or len(entries) != len(docs):
        return False
    for d in docs:
        if not _unchanged(entries.get(d.name), d, recipe):
            return False
    return True


def _unchanged(e: dict | None, d: Document, recipe: str) -> bool:
    if e is None or e["sha256"] != d.sha256 or e["recipe"] != recipe:
        return False
    if "docling" in e:
        # Converted without docling (a note, or skipped for want of it): again once it is installed.
        from .convert import has_docling

        return e["docling"] == has_docling()
    return True


def _report(config, m, docs, added, changed, removed, notes, embedded, t0, was_cancelled) -> IndexReport:
    entries = m["documents"]
    touched = set(added) | set(changed)
    skipped = tuple(
        (d.name, entries[d.name]["skipped"]) for d in docs
        if d.name in entries and entries[d.name].get("skipped")
    )
    unchanged = sum(
        1 for d in docs
        if d.name in entries and d.name not in touched and not entries[d.name].get("skipped")
        and entries[d.name]["sha256"] == d.sha256
    )
    return IndexReport(
        source=config.name,
        collection=m["collection"],
        added=tuple(added),
        changed=tuple(changed),
        removed=tuple(removed),
        unchanged=unchanged,
        skipped=skipped,
        notes=tuple(notes),
        chunks_embedded=embedded,
        chunks_total=sum(int(e["chunks"]) for e in entries.values()),
        seconds=round(time.monotonic() - t0, 3),
        cancelled=was_cancelled,
    )


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _collection_lock(config: SourceConfig, store_dir: str) -> threading.Lock:
    # Two threads of one process indexing the same source would race on its manifest.
    key = (config.location.url or mf.store_path(config.location, store_dir)) + "\0" + config.name
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def payload_dirs(name: str) -> list[str]:
    """Every parent directory of a path ("a/b/c.md" → ["a", "a/b"]); for a URL, its
    origin and path prefixes. What the `dir` filter matches."""
    prefix = ""
    parts = name.split("/")
    if "://" in name:
        scheme, rest = name.split("://", 1)
        parts = rest.split("?", 1)[0].split("/")
        prefix = scheme + "://"
    out = []
    for i in range(1, len(parts)):
        out.append(prefix + "/".join(parts[:i]))
    return [d for d in out if d and d != prefix]


def _batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Consecutive runs of `order` (shortest first) of at most EMBED_BATCH chunks and at
    most BATCH_CHARS padded characters: the model pads a batch to its longest text, and its
    activations grow with batch × length, so long chunks go in smaller batches (peak memory)."""
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= EMBED_BATCH or (len(cur) + 1) * lengths[i] > BATCH_CHARS):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


@dataclass
class _Group:
    """Documents whose chunks are embedded together and committed together."""

    docs: list = field(default_factory=list)  # (Document, new entry)
    ids: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    payloads: list = field(default_factory=list)
    vectors: list = field(default_factory=list)


class _Run:
    def __init__(self, config, docs, store_dir, root, recipe, progress, cancelled, t0):
        self.config, self.docs, self.store_dir, self.root = config, docs, store_dir, root
        self.recipe, self.progress, self.cancelled, self.t0 = recipe, progress, cancelled, t0
        self.size, self.overlap = config.chunk_size, config.overlap
        self.added: list[str] = []
        self.changed: list[str] = []
        self.removed: list[str] = []
        self.notes: list[tuple[str, str]] = []
        self.embedded = 0
        self.done = 0
        self.stopped = False
        self.error: BaseException | None = None

    # -- setup -------------------------------------------------------------------------
    def go(self) -> IndexReport:
        from .embedder import load_embedder
        from .vectors import open_store

        self.embedder = load_embedder(self.config.model, self.root)
        self.collection = mf.collection_name(self.config.name, self.embedder.name, self.embedder.dim)
        self.store = open_store(self.config.location, mf.store_path(self.config.location, self.store_dir))
        self.mpath = mf.manifest_path(self.config.location, self.store_dir, self.collection)
        self.m = self._open_collection()
        self._forget_superseded()
        entries = self.m["documents"]
        names = {d.name for d in self.docs}
        self.removed = sorted(n for n in entries if n not in names)
        if self.removed:
            ids = [i for n in self.removed for i in mf.point_ids(n, entries[n])]
            self.store.delete(self.collection, ids)
            for n in self.removed:
                del entries[n]
            self._save()
        todo = []
        for d in self.docs:
            if _unchanged(entries.get(d.name), d, self.recipe):
                self.done += 1
            else:
                todo.append(d)
        if self.progress and self.done:
            self.progress(self.done, len(self.docs), self.docs[0].name)
        if todo:
            self._index(todo)
        return _report(self.config, self.m, self.docs, self.added, self.changed, self.removed,
                       self.notes, self.embedded, self.t0, self.stopped)

    def _open_collection(self) -> dict:
        """The manifest, made true of the collection: created, recovered or rebuilt."""
        m = mf.load(self.mpath)
        if not self.store.exists(self.collection):
            self.store.create(self.collection, self.embedder.dim)
            m = None  # whatever a manifest says, the collection holds nothing
        if m is None or m.get("collection") != self.collection:
            m = self._rebuild()
        elif m["pending"]:
            # An interrupted run: its points not described by a committed entry are orphans.
            keep = {i for n, e in m["documents"].items() for i in mf.point_ids(n, e)}
            stale = [i for n, e in m["pending"].items() for i in mf.point_ids(n, e) if i not in keep]
            self.store.delete(self.collection, stale)
            m["pending"] = {}
            mf.save(self.mpath, m)
        if self.store.count(self.collection) != sum(int(e["chunks"]) for e in m["documents"].values()):
            m = self._rebuild()  # points the manifest does not describe (or misses): trust the points
        return m

    def _rebuild(self) -> dict:
        """A manifest from the collection's own payloads: complete documents are kept, partial
        or superseded ones deleted (so the result never holds duplicates)."""
        current = {d.name: d.sha256 for d in self.docs}
        groups: dict[tuple, dict] = {}
        bad: list[str] = []
        fields = ["name", "sha256", "chunk", "chunks", "recipe", "format"]
        for pid, p in self.store.scroll(self.collection, fields):
            try:
                name, sha, rec = str(p["name"]), str(p["sha256"]), str(p["recipe"])
                index, total = int(p["chunk"]), int(p["chunks"])
                size, overlap = mf.recipe_chunking(rec)
            except (KeyError, TypeError, ValueError):
                bad.append(pid)
                continue
            if pid != mf.point_id(name, sha, size, overlap, index):
                bad.append(pid)
                continue
            g = groups.setdefault((name, sha, rec), {"chunks": total, "seen": set(), "ids": [],
                                                     "format": p.get("format", "")})
            g["seen"].add(index)
            g["ids"].append(pid)
        chosen: dict[str, tuple] = {}
        for key, g in groups.items():
            if g["seen"] != set(range(g["chunks"])):
                continue  # partly written
            name, sha, rec = key
            rank = (sha == current.get(name), rec == self.recipe)
            if name not in chosen or rank > chosen[name][0]:
                chosen[name] = (rank, key)
        keep = {key for _, key in chosen.values()}
        stale = bad + [i for key, g in groups.items() if key not in keep for i in g["ids"]]
        self.store.delete(self.collection, stale)
        m = mf.empty(self.config.name, self.config.model, self.embedder.name, self.embedder.dim, self.collection)
        for name, sha, rec in keep:
            g = groups[(name, sha, rec)]
            m["documents"][name] = {"sha256": sha, "chunks": g["chunks"], "recipe": rec, "format": g["format"]}
        mf.save(self.mpath, m)
        return m

    def _forget_superseded(self) -> None:
        """Another manifest of this source with the same configured model (its identity or
        dimension changed): its collection is dead weight, and would mislead `find`."""
        d = mf.manifest_dir(self.config.location, self.store_dir)
        try:
            names = os.listdir(d)
        except OSError:
            return
        for fn in names:
            path = os.path.join(d, fn)
            if not fn.endswith(".json") or path == self.mpath:
                continue
            other = mf.load(path)
            if other and other.get("source") == self.config.name and other.get("model") == self.config.model:
                if self.store.exists(other["collection"]):
                    self.store.drop(other["collection"])
                os.unlink(path)

    def _save(self) -> None:
        mf.save(self.mpath, self.m)

    # -- indexing ----------------------------------------------------------------------
    def _index(self, todo: list[Document]) -> None:
        from .chunking import chunk
        from .convert import Skipped, convert_cached, has_docling

        cache = os.path.join(self.store_dir, "rag", "converted")
        jobs: queue.Queue = queue.Queue(maxsize=1)  # one group embedded ahead of the writer
        writer = threading.Thread(target=self._writer, args=(jobs,), name="amelia-rag-writer", daemon=True)
        writer.start()
        group = _Group()
        try:
            for d in todo:
                if self._stop():
                    break
                entry = {"sha256": d.sha256, "chunks": 0, "recipe": self.recipe, "format": ""}
                try:
                    conv = convert_cached(d.path, d.sha256, cache)
                except Skipped as e:
                    entry["skipped"] = str(getattr(e, "reason", "") or e)
                    if not getattr(e, "lasting", True):
                        entry["docling"] = has_docling()  # e.g. a DOCX waiting for the extra
                    group.docs.append((d, entry))
                    continue
                if conv.note:
                    self.notes.append((d.name, conv.note))
                    entry["docling"] = has_docling()  # degraded: convert again when docling comes
                chunks = chunk(conv.text, self.size, self.overlap, markdown=conv.markdown)
                entry["chunks"], entry["format"] = len(chunks), conv.format
                group.docs.append((d, entry))
                for c in chunks:
                    group.ids.append(mf.point_id(d.name, d.sha256, self.size, self.overlap, c.index))
                    group.texts.append(c.text)
                    group.payloads.append(self._payload(d, entry, c))
                if len(group.texts) >= GROUP_CHUNKS:
                    self._embed(group, jobs)
                    group = _Group()
            if group.docs and not self._stop():
                self._embed(group, jobs)
        finally:
            jobs.put(None)
            writer.join()
        if self.error is not None:
            raise self.error

    def _stop(self) -> bool:
        if not self.stopped and self.cancelled is not None and self.cancelled():
            self.stopped = True
        return self.stopped or self.error is not None

    def _payload(self, d: Document, entry: dict, c) -> dict:
        import hashlib

        return {
            "name": d.name, "sha256": d.sha256, "chunk": c.index, "chunks": entry["chunks"],
            "start": c.start, "end": c.end, "headings": list(c.headings), "text": c.text,
            "format": entry["format"], "content_hash": hashlib.sha256(c.text.encode()).hexdigest(),
            "dirs": payload_dirs(d.name), "recipe": self.recipe,
        }

    def _embed(self, group: _Group, jobs: queue.Queue) -> None:
        """Embed the group's chunks (shortest first, so each batch pads little), then hand
        it to the writer. Abandoned, unwritten, when cancelled."""
        order = sorted(range(len(group.texts)), key=lambda i: len(group.texts[i]))
        vectors: list = [None] * len(order)
        for idx in _batches(order, [len(t) for t in group.texts]):
            if self._stop():
                return
            for i, v in zip(idx, self.embedder.embed([group.texts[i] for i in idx])):
                vectors[i] = v
        group.vectors = vectors
        self.embedded += len(vectors)
        while not self._stop():
            try:
                jobs.put(group, timeout=0.2)
            except queue.Full:
                continue
            # Progress counts documents embedded (called here, on the caller's thread).
            self.done += len(group.docs)
            if self.progress and group.docs:
                self.progress(self.done, len(self.docs), group.docs[-1][0].name)
            return

    def _writer(self, jobs: queue.Queue) -> None:
        while True:
            group = jobs.get()
            if group is None:
                return
            if self.error is not None:
                continue
            try:
                self._write(group)
            except BaseException as e:  # noqa: BLE001 - handed to the indexing thread
                self.error = e if isinstance(e, RagError) else RagError(f"indexing failed: {e}")

    def _write(self, group: _Group) -> None:
        """pending → points in → old points out → committed: the order that makes a kill
        at any moment recoverable without duplicates."""
        entries, pending = self.m["documents"], self.m["pending"]
        for d, entry in group.docs:
            pending[d.name] = entry
        self._save()
        if group.ids:
            self.store.upsert(self.collection, group.ids, group.vectors, group.payloads)
        stale = []
        for d, entry in group.docs:
            old = entries.get(d.name)
            if old is not None:
                new_ids = set(mf.point_ids(d.name, entry))
                stale += [i for i in mf.point_ids(d.name, old) if i not in new_ids]
        if stale:
            self.store.delete(self.collection, stale)
        for d, entry in group.docs:
            if not entry.get("skipped"):
                (self.changed if d.name in entries else self.added).append(d.name)
            entries[d.name] = entry
            del pending[d.name]
        self._save()
