"""What a git target costs: the same 10-step pipeline with and without `target:`.

Prints, for each form, the median wall time of: the first run (with a target: the
worktree made and the first commit), a no-op run, and a run after one input changed
(one step re-runs; with a target: one commit). Usage:

    python benchmarks/targets/bench.py [--reps N] [--amelia PATH]

The work directories are made under $TMPDIR (outside any git work tree).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = 10


def sh(cwd, *args):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def pipeline(targeted: bool) -> str:
    head = "amelia: 1\n" + ("targets:\n  out: {branch: amelia/out}\n" if targeted else "") + "steps:\n"
    body = "".join(
        f"  s{i}:\n" + ("    target: out\n" if targeted else "")
        + f"    inputs: [\"src/m{i}/*.txt\"]\n    run: mkdir -p build && cat src/m{i}/*.txt > build/s{i}.txt\n"
        f"    output: build/s{i}.txt\n" for i in range(STEPS))
    return head + body


def project(base: Path, targeted: bool) -> Path:
    root = base / ("targeted" if targeted else "plain")
    root.mkdir(parents=True)
    sh(root, "git", "init", "-q", "-b", "main")
    for i in range(STEPS):
        (root / "src" / f"m{i}").mkdir(parents=True)
        for j in range(50):
            (root / "src" / f"m{i}" / f"f{j}.txt").write_text(f"module {i} file {j}\n" * 20)
    (root / ".gitignore").write_text(".amelia/\nbuild/\n")
    (root / "amelia.yaml").write_text(pipeline(targeted))
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=B", "-c", "user.email=b@x", "commit", "-q", "-m", "init")
    return root


def timed(amelia: str, root: Path) -> float:
    t = time.perf_counter()
    subprocess.run([amelia, "run"], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - t


def measure(amelia: str, root: Path, targeted: bool, reps: int) -> dict:
    first = timed(amelia, root)
    noop = statistics.median(timed(amelia, root) for _ in range(reps))
    changed = []
    src = (root / ".amelia/worktrees/out" if targeted else root) / "src/m0/f0.txt"
    for k in range(reps):
        src.write_text(f"changed {k}\n")
        changed.append(timed(amelia, root))
    commits = 0
    if targeted:
        out = subprocess.run(["git", "rev-list", "--count", "amelia/out"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
        commits = int(out) - 1
    return {"first": first, "noop": noop, "changed": statistics.median(changed), "commits": commits}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--amelia", default=os.environ.get("AMELIA", str(REPO / ".venv/bin/amelia")))
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="amelia-targets-bench-"))
    env_note = f"{STEPS} steps x 50 input files; medians of {args.reps} runs"
    try:
        rows = {form: measure(args.amelia, project(base, form == "target"), form == "target", args.reps)
                for form in ("plain", "target")}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(env_note)
    print(f"{'form':<8} {'first s':>8} {'no-op s':>8} {'changed s':>10} {'commits':>8}")
    for form, r in rows.items():
        print(f"{form:<8} {r['first']:>8.3f} {r['noop']:>8.3f} {r['changed']:>10.3f} {r['commits']:>8}")
    extra = rows["target"]["changed"] - rows["plain"]["changed"]
    print(f"a target adds {extra * 1000:.0f} ms to a run with one change (the commit), "
          f"{(rows['target']['noop'] - rows['plain']['noop']) * 1000:.0f} ms to a no-op")
    return 0


if __name__ == "__main__":
    sys.exit(main())
