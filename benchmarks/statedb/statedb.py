#!/usr/bin/env python3
"""state.db size: one step over a 30,000-file glob, run ten times, one file changed between runs.

    .venv/bin/python benchmarks/statedb/statedb.py [--files 30000] [--runs 10]
        [--amelia-path PATH ...] [--keep] [--json]

Workload: src/dNN/fNNNNN.txt, --files small files in directories of 1,000; one step
`count` with `inputs: ["src/**/*.txt"]` that writes the number of files to
build/count.txt. Run 1 is a clean build; before each later run one file
(src/d00/f00000.txt) gets new content, so every run makes a new record whose input
hashes differ from the last in one entry. After each run: the size of state.db (plus
its -wal file, if any: what the store holds on disk) and the run's wall time. Checks
that every run exits 0 and ran the step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ left in the repo
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import Failed, add_options, amelias, loadavg, log, scratch, table, timed  # noqa: E402

PIPELINE = """\
amelia: 1
name: statedb
steps:
  count:
    run: mkdir -p build && find src -name '*.txt' | wc -l > build/count.txt
    inputs: ["src/**/*.txt"]
    output: build/count.txt
"""


def make_project(root: Path, files: int) -> None:
    (root / "amelia.yaml").write_text(PIPELINE)
    for i in range(files):
        d = root / "src" / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n")


def store_bytes(root: Path) -> int:
    db = root / ".amelia" / "state.db"
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def measure(amelia, work: Path, files: int, runs: int) -> list:
    """[(run, state.db bytes, wall seconds)] for one amelia on a fresh project."""
    root = work / amelia.label
    root.mkdir()
    make_project(root, files)
    rows = []
    for n in range(1, runs + 1):
        if n > 1:
            (root / "src/d00/f00000.txt").write_text(f"changed before run {n}\n")
        wall = timed(amelia.argv("run"), root, amelia.env())
        if (root / "build/count.txt").read_text().strip() != str(files):
            raise Failed(f"{amelia.label}: run {n} did not count {files} files")
        rows.append((n, store_bytes(root), wall))
        log(f"{amelia.label}: run {n}: state.db {store_bytes(root) / 1e6:.2f} MB, {wall:.2f} s")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=30000)
    ap.add_argument("--runs", type=int, default=10)
    add_options(ap)
    args = ap.parse_args()
    log(f"load average {loadavg()}")
    results = {}
    try:
        with scratch("amelia-statedb-", args.keep) as work:
            for a in amelias(args):
                results[a.label] = measure(a, work, args.files, args.runs)
    except Failed as e:
        log(f"FAILED: {e}")
        return 1
    labels = list(results)
    cols = ["run"] + [f"{label} MB" for label in labels] + [f"{label} s" for label in labels]
    rows = []
    for i in range(args.runs):
        rows.append([str(i + 1)] + [f"{results[label][i][1] / 1e6:.2f}" for label in labels]
                    + [f"{results[label][i][2]:.2f}" for label in labels])
    print(f"state.db after each run of one step over {args.files:,} files (one file changed between runs)")
    table(cols, rows)
    log(f"load average {loadavg()}")
    if args.json:
        print(json.dumps({label: [{"run": n, "bytes": b, "seconds": round(s, 3)} for n, b, s in r]
                          for label, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    t0 = time.time()
    code = main()
    log(f"{time.time() - t0:.0f} s")
    sys.exit(code)
