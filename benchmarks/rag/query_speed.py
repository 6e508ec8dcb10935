"""Query latency (issue 12) at 20,000 chunks in the embedded store.

The bulk of the collection is random unit vectors with realistic payloads (upserted
directly: building it through the model would take minutes and measure nothing more); a
few real documents are indexed through index_source so the queries have real neighbours.
Prints p50/p95 of: the store's search alone, the query's embedding alone, and
retrieval.search end to end (embedding + search), unfiltered and with a `dir` filter.

    .venv/bin/python benchmarks/rag/query_speed.py [--chunks 20000] [--queries 50]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

QUERIES = ["how is the index kept up to date", "what does a chunk carry", "retry after an error",
           "which model embeds the text", "cache key of a step", "where are the vectors stored"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def line(label: str, xs: list[float]) -> str:
    return f"{label:<42} p50 {pct(xs, 50) * 1000:6.1f} ms   p95 {pct(xs, 95) * 1000:6.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # qdrant's "local mode is not recommended above 20,000"
    import numpy as np

    from amelia.rag import manifest as mf
    from amelia.rag.embedder import load_embedder
    from amelia.rag.indexer import index_source
    from amelia.rag.retrieval import search
    from amelia.rag.sources import Document, SourceConfig
    from amelia.rag.vectors import close_all, open_store

    root = Path(tempfile.mkdtemp(prefix="amelia-rag-query-"))
    try:
        store_dir = str(root / ".amelia")
        config = SourceConfig(name="bench")
        docs = []
        for i, q in enumerate(QUERIES):
            p = root / "docs" / f"real{i}.md"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"# Topic {i}\n\n{q.capitalize()}: this document answers it at length.")
            docs.append(Document(f"docs/real{i}.md", hashlib.sha256(p.read_bytes()).hexdigest(), str(p)))
        index_source(config, docs, store_dir)
        emb = load_embedder(config.model, str(root))
        coll = mf.collection_name(config.name, emb.name, emb.dim)
        store = open_store(config.location, mf.store_path(config.location, store_dir))
        rng = np.random.default_rng(7)
        t = time.perf_counter()
        bulk = args.chunks - len(docs)
        for b in range(0, bulk, 1000):
            n = min(1000, bulk - b)
            v = rng.normal(size=(n, emb.dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            ids = [mf.point_id(f"bulk/f{(b + i) // 5}.md", "0" * 64, 800, 200, (b + i) % 5) for i in range(n)]
            pays = [{"name": f"bulk/f{(b + i) // 5}.md", "chunk": (b + i) % 5, "text": "x " * 350,
                     "headings": ["Bulk"], "dirs": ["bulk"], "format": "markdown",
                     "content_hash": "0" * 64} for i in range(n)]
            store.upsert(coll, ids, list(v), pays)
        build = time.perf_counter() - t
        close_all()
        t = time.perf_counter()
        store = open_store(config.location, mf.store_path(config.location, store_dir))
        count = store.count(coll)
        reopen = time.perf_counter() - t
        print(f"{count} points (bulk upserted in {build:.1f} s); reopening the store: {reopen:.2f} s")
        qs = [QUERIES[i % len(QUERIES)] for i in range(args.queries)]
        vecs = [emb.embed_query(q) for q in QUERIES]
        store.search(coll, vecs[0], 5)  # warm
        s_times, e_times, full, filt = [], [], [], []
        for i, q in enumerate(qs):
            t = time.perf_counter()
            store.search(coll, vecs[i % len(vecs)], 5)
            s_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            emb.embed_query(q)
            e_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            hits = search(config, store_dir, q, top_k=5)
            full.append(time.perf_counter() - t)
            assert hits and hits[0].name.startswith("docs/real"), hits[:1]
            t = time.perf_counter()
            search(config, store_dir, q, top_k=5, filter={"dir": "docs"})
            filt.append(time.perf_counter() - t)
        print(line("store search, top 5 (no embedding)", s_times))
        print(line("query embedding", e_times))
        print(line("retrieval.search (embedding + search)", full))
        print(line("retrieval.search with filter {dir: docs}", filt))
        print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    finally:
        close_all()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
