"""Indexing speed (issue 12): 1,000 markdown files of ~2 KB in a temp dir.

Prints: first-index throughput (chunks/s) next to raw fastembed embedding of the same chunks
(the bundled model, batches of 64, in document order) and the ratio; re-index after one file
changed and with nothing changed, in this process (model loaded, store open) and in a fresh
process (what a command pays); the first index's peak RSS (a fresh process).

    .venv/bin/python benchmarks/rag/index_speed.py [--files 1000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WORDS = (
    "system data index query model vector store chunk document file cache build step graph "
    "agent prompt source embed search result score filter heading section paragraph sentence "
    "word token memory disk process thread batch retry error report change hash content "
    "network server client request response latency throughput limit window budget plan run "
    "the a of to and in is for on with as by at from that this it be are was were has have "
    "will can may should must not each every some many more less new old first last next"
).split()


def sentence(rng: random.Random) -> str:
    n = rng.randint(8, 22)
    s = " ".join(rng.choice(WORDS) for _ in range(n))
    return s[0].upper() + s[1:] + "."


def document(rng: random.Random, i: int, target: int = 2048) -> str:
    parts = [f"# Document {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}", ""]
    size = len(parts[0])
    section = 1
    while size < target:
        if rng.random() < 0.2:
            line = f"## Section {section}"
            section += 1
        else:
            line = " ".join(sentence(rng) for _ in range(rng.randint(2, 5)))
        parts += [line, ""]
        size += len(line) + 2
    return "\n".join(parts)


def make_corpus(root: Path, files: int) -> None:
    rng = random.Random(12)
    for i in range(files):
        p = root / "docs" / f"d{i // 100:02d}" / f"doc{i:04d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(document(rng, i))


def documents(root: Path):
    from amelia.rag.sources import Document

    out = []
    for p in sorted((root / "docs").rglob("*.md")):
        out.append(Document(p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest(), str(p)))
    return out


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
t0 = time.perf_counter()
from benchmarks.rag.index_speed import documents
from amelia.rag.indexer import index_source
from amelia.rag.sources import SourceConfig
from pathlib import Path
root = Path(sys.argv[1])
docs = documents(root)
mode = sys.argv[2]
if mode == "first":  # the model loaded first, so the figure is indexing throughput
    from amelia.rag.embedder import load_embedder
    load_embedder(SourceConfig(name="bench").model, str(root))
t1 = time.perf_counter()
c1 = time.process_time()
r = index_source(SourceConfig(name="bench"), docs, str(root / ".amelia"))
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({"index_s": t2 - t1, "index_cpu_s": c2 - c1, "process_s": t2 - t0, "embedded": r.chunks_embedded,
                  "total": r.chunks_total, "changed": len(r.changed), "unchanged": r.unchanged,
                  # VmHWM, not ru_maxrss: that one is inherited from the parent across fork/exec
                  "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024,
                  "fastembed": "fastembed" in sys.modules, "qdrant": "qdrant_client" in sys.modules}))
"""


def child(root: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), mode, str(REPO)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.splitlines()[-1])


def raw_embedding(root: Path) -> tuple[int, float, float, float]:
    """(chunks, seconds, CPU seconds, mean characters): the bundled model on the same
    chunks, batches of 64."""
    from amelia.rag.chunking import chunk
    from amelia.rag.embedder import load_embedder
    from amelia.rag.sources import DEFAULT_MODEL

    texts = [c.text for d in documents(root) for c in chunk(Path(d.path).read_text(), 800, 200)]
    emb = load_embedder(DEFAULT_MODEL, str(root))
    emb.embed(texts[:64])  # warm
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), 64):
        emb.embed(texts[i : i + 64])
    return len(texts), time.perf_counter() - t, time.process_time() - c, sum(map(len, texts)) / len(texts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--keep", help="build the corpus in this directory and keep it")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="amelia-rag-bench-"))
    try:
        make_corpus(root, args.files)
        n, raw_s, raw_cpu, chars = raw_embedding(root)
        first = child(root, "first")
        raw_rate, idx_rate = n / raw_s, first["embedded"] / first["index_s"]
        raw_cpu_rate, idx_cpu_rate = n / raw_cpu, first["embedded"] / first["index_cpu_s"]
        print(f"corpus: {args.files} files, {n} chunks of {chars:.0f} characters on average, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"raw fastembed (same chunks, batch 64): {raw_rate:6.1f} chunks/s ({raw_s:.1f} s)")
        print(f"first index:                           {idx_rate:6.1f} chunks/s ({first['index_s']:.1f} s) "
              f"= {100 * idx_rate / raw_rate:.0f} % of raw")
        # The machine is shared: per CPU-second figures are steadier than wall-clock ones.
        print(f"per CPU-second: raw {raw_cpu_rate:.1f} chunks, index {idx_cpu_rate:.1f} chunks "
              f"= {100 * idx_cpu_rate / raw_cpu_rate:.0f} % of raw")
        print(f"peak RSS of the first index (fresh process): {first['rss_mb']:.0f} MB")
        # one file changed
        target = sorted((root / "docs").rglob("*.md"))[len(documents(root)) // 2]
        target.write_text(target.read_text() + "\n\nOne more paragraph, so this file changed.\n")
        one = child(root, "again")
        print(f"one file changed, fresh process: index_source {one['index_s']:.2f} s, whole process "
              f"{one['process_s']:.2f} s ({one['changed']} changed, {one['embedded']} chunks embedded)")
        none = child(root, "again")
        print(f"nothing changed, fresh process:  index_source {none['index_s'] * 1000:.0f} ms, whole process "
              f"{none['process_s']:.2f} s (fastembed imported: {none['fastembed']}, qdrant_client: {none['qdrant']})")
        # the same two in one process (model loaded and store open, as in `amelia watch`)
        from amelia.rag.indexer import index_source
        from amelia.rag.sources import SourceConfig

        cfg, store = SourceConfig(name="bench"), str(root / ".amelia")
        index_source(cfg, documents(root), store)
        target.write_text(target.read_text() + "\nAnd another.\n")
        t = time.perf_counter()
        r = index_source(cfg, documents(root), store)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        index_source(cfg, documents(root), store)
        t2 = time.perf_counter() - t
        print(f"in one process (warm): one file changed {t1 * 1000:.0f} ms ({r.chunks_embedded} chunks), "
              f"nothing changed {t2 * 1000:.1f} ms (documents hashed by the caller, not timed)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
