"""RAG through the command line, as a user pays for it (issue 12): whole `amelia` processes
on 1,000 markdown files of ~2 KB (the corpus of index_speed.py).

Prints wall times of: the first `amelia index` (and its chunks/s and peak RSS), `amelia index`
after one file changed, `amelia index` and `amelia run` with nothing changed (whether
qdrant_client or fastembed were imported), and `amelia query` (a fresh process each time).

    .venv/bin/python benchmarks/rag/cli_speed.py [--files 1000] [--repeat 5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from index_speed import make_corpus  # noqa: E402

PIPELINE = """\
amelia: 1
sources:
  docs: {paths: ["docs/**/*.md"]}
steps:
  related:
    retrieve: {source: docs, query: "cache the index of a document store"}
    output: build/related.json
"""


def amelia(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "amelia", *args], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"amelia {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return dt, proc


def imports(root: Path, *args: str) -> set:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "amelia", *args], cwd=root,
                          capture_output=True, text=True)
    return {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", default="")
    a = ap.parse_args()
    root = Path(a.keep or tempfile.mkdtemp(prefix="amelia-rag-cli-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        make_corpus(root, a.files)
        (root / "amelia.yaml").write_text(PIPELINE)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        first, proc = amelia(root, "index", "--json")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        ev = next(json.loads(x) for x in proc.stdout.splitlines() if '"source_indexed"' in x)
        print(f"first `amelia index`: {first:.1f} s for {a.files} files, {ev['chunks_embedded']} chunks "
              f"({ev['chunks_embedded'] / ev['seconds']:.1f} chunks/s inside the step); "
              f"peak RSS {max(peak, before) / 1024:.0f} MB")
        amelia(root, "run")  # the retrieve step, so that `run` below is a no-op
        changed = []
        target = sorted((root / "docs").rglob("*.md"))[0]
        for i in range(a.repeat):
            with open(target, "a") as f:
                f.write(f"\nOne more sentence about caching, edit {i}.\n")
            time.sleep(0.15)  # out of the racy-mtime window, as a human edit is
            changed.append(amelia(root, "index")[0])
        print(f"`amelia index` after one file changed: median {statistics.median(changed):.2f} s "
              f"(min {min(changed):.2f}, max {max(changed):.2f}, n={a.repeat})")
        amelia(root, "run")
        same = [amelia(root, "index")[0] for _ in range(a.repeat)]
        noop = [amelia(root, "run")[0] for _ in range(a.repeat)]
        heavy = {"qdrant_client", "fastembed", "onnxruntime"}
        print(f"`amelia index`, nothing changed: median {statistics.median(same):.3f} s; "
              f"heavy imports: {sorted(imports(root, 'index') & heavy) or 'none'}")
        print(f"`amelia run`, nothing changed: median {statistics.median(noop):.3f} s; "
              f"heavy imports: {sorted(imports(root, 'run') & heavy) or 'none'}")
        query = [amelia(root, "query", "docs", "how is a chunk embedded", "-k", "5")[0] for _ in range(a.repeat)]
        print(f"`amelia query` (fresh process: imports, model load, store open, search): "
              f"median {statistics.median(query):.2f} s")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
