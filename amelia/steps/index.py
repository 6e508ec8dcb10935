"""`index` steps: a RAG source brought up to date in its vector index (DESIGN §5).

Made from `sources:` (resolve/sources.py), one per source, id `source:NAME`. Its inputs
are the source's files, so the engine's file-state memo decides whether it is stale
without importing Qdrant or fastembed; its output is a digest of what was indexed
(documents and their hashes, the chunking, the model), which the steps that read the
source list as an input. The index itself lives in Qdrant, so the kind does not restore
its output (`restores=False`): a missing digest means "index again", which is
incremental and cheap when little changed (rag/indexer.py).
"""

from __future__ import annotations

import json
import os
import time

from ..rag.sources import SourceConfig
from . import Resolved, StepError, StepResult

CONFIG = SourceConfig
# The source's settings as resolved (defaults in), never the store's absolute path.
KEY_REPLACES = ("chunk", "model", "exclude", "urls", "paths")
BAR_WIDTH = 20


def key_material(config: SourceConfig) -> dict:
    return {"source": {"chunk": [config.chunk_size, config.overlap], "model": config.model,
                       "exclude": list(config.exclude), "urls": list(config.urls),
                       "server": config.location.url}}


def resolve(ctx, sid: str, data: dict) -> Resolved:
    from ..rag.sources import SOURCE_PREFIX
    from ..resolve.sources import source_config

    return Resolved(source_config(ctx.doc, sid[len(SOURCE_PREFIX):], ctx.root))


def documents(config: SourceConfig, root: str, exclude: tuple, states=None) -> list:
    """The source's files now on disk, with their content hashes (through the run's
    file-state memo when there is one: the fingerprint hashed them already)."""
    from .. import paths
    from ..rag.sources import Document
    from ..store.objects import hash_file

    found = {}
    for pattern in config.paths:
        for rel, st in paths.expand(root, pattern):
            if rel not in found and not any(paths.matches(x, rel) for x in exclude):
                full = os.path.join(root, rel)
                found[rel] = Document(rel, states.hash(rel, st) if states else hash_file(full), full)
    return [found[k] for k in sorted(found)]


def execute(step, ctx, cancel) -> StepResult:
    from ..rag.errors import RagError
    from ..rag.indexer import index_source

    config: SourceConfig = step.config
    cancel.check()
    store_dir = os.path.join(ctx.root, ".amelia")
    try:
        docs = documents(config, ctx.root, step.exclude, ctx.states)
    except ValueError as e:  # a symlink that leaves the project
        raise StepError(str(e)) from None
    failed_urls = []
    if config.urls:
        docs += _pages(config, store_dir, getattr(ctx, "refresh", False), failed_urls)
    for url, why in failed_urls:
        ctx.warn(step.id, f"{url}: {why}")
    total = len(docs)
    last = [0.0]

    def progress(done: int, _total: int, name: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or done == _total:
            last[0] = now
            filled = BAR_WIDTH * done // max(_total, 1)
            ctx.progress(step.id, f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {done}/{_total} documents")

    try:
        report = index_source(config, docs, store_dir, progress=progress,
                              cancelled=lambda: cancel.cancelled)
    except RagError as e:
        raise StepError(e.message, hint=e.hint) from None
    cancel.check()
    for name, reason in report.skipped:
        ctx.warn(step.id, f"skipped {name}: {reason}")
    for name, note in report.notes:
        ctx.warn(step.id, f"{name}: {note}")
    ctx.indexed(step.id, config.name, report, total)
    _write_digest(os.path.join(ctx.root, step.outputs[0]), config, report, docs)
    return StepResult()


def _pages(config: SourceConfig, store_dir: str, refresh: bool, failed: list) -> list:
    from ..rag.sources import Document
    from ..rag.urls import fetch_pages

    out = []
    for page in fetch_pages(list(config.urls), os.path.join(store_dir, "rag", "urls"), refresh=refresh):
        if page.error:
            failed.append((page.url, page.error))
        if page.sha256 and page.path:  # a failed refresh keeps the page it had
            out.append(Document(page.url, page.sha256, page.path))
    return out


def _write_digest(path: str, config: SourceConfig, report, docs: list) -> None:
    """What the index holds, as the steps that read the source see it: the same bytes for
    the same documents and settings (no times, no counts that depend on history)."""
    skipped = dict(report.skipped)
    digest = {
        "source": config.name,
        "collection": report.collection,
        "model": config.model,
        "chunk": {"size": config.chunk_size, "overlap": config.overlap},
        "documents": {d.name: d.sha256 for d in docs if d.name not in skipped},
        "skipped": {d.name: [d.sha256, skipped[d.name]] for d in docs if d.name in skipped},
    }
    from ..atomic import write_text

    write_text(path, json.dumps(digest, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
