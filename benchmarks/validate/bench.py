"""Seconds of `amelia validate` and `amelia plan` on generated pipelines of 1,000, 5,000
and 20,000 steps (generate.py: a chain and a wide fan, with inputs and outputs).

`plan` is timed twice: on a new store (the file is parsed, checked and resolved, then
planned) and again (the resolved pipeline comes from the store; only planning).
Both must grow linearly with the steps (issue 10, item 9: 20,000 steps validate in
under 5 s). Standard library only; run with the venv's Python:

    .venv/bin/python benchmarks/validate/bench.py [--sizes 1000,5000,20000] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import Failed, add_options, amelias, loadavg, log, scratch, table, timed  # noqa: E402

from generate import write  # noqa: E402


def cpu_timed(argv, cwd, env) -> tuple:
    """(wall s, CPU s) of one run: CPU (user + system of the child) does not stretch with
    the machine's load the way wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(argv, cwd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,20000", help="step counts (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each; the best is shown (default: %(default)s)")
    ap.add_argument("--limit", type=float, default=5.0,
                    help="exit 1 if validate of the largest size takes longer (default: %(default)s s)")
    add_options(ap)
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    # Only this tree unless told: the commit before the fix takes minutes at 20,000 steps.
    args.amelia_path = args.amelia_path or ["installed"]
    try:
        which = amelias(args)
    except Failed as e:
        log(str(e))
        return 1
    figures = {}
    with scratch("amelia-validate-bench-", args.keep) as d:
        log(f"load average before: {loadavg()}")
        rows = []
        for a in which:
            for n in sizes:
                proj = d / a.label / str(n)
                write(proj, n)
                runs = [cpu_timed(a.argv("validate"), proj, a.env()) for _ in range(args.reps)]
                f = {"validate": min(w for w, _ in runs), "validate CPU": min(c for _, c in runs)}
                cold = []
                for _ in range(args.reps):
                    shutil.rmtree(proj / ".amelia", ignore_errors=True)
                    cold.append(timed(a.argv("plan"), proj, a.env()))
                f["plan (new store)"] = min(cold)
                f["plan (resolved)"] = min(timed(a.argv("plan"), proj, a.env()) for _ in range(args.reps))
                figures[f"{a.label} {n}"] = f
                rows.append([f"{a.label} {n:,} steps"] + [f"{v:.2f}" for v in f.values()])
                log(f"{a.label} {n}: " + ", ".join(f"{k} {v:.2f}s" for k, v in f.items()))
        log(f"load average after: {loadavg()}")
    table(["pipeline", "validate s", "validate CPU s", "plan s (new store)", "plan s (resolved)"], rows)
    if args.json:
        print(json.dumps(figures, indent=2))
    worst = figures.get(f"current {max(sizes)}", {}).get("validate", 0.0)
    if worst > args.limit:
        log(f"validate of {max(sizes):,} steps took {worst:.2f} s, over {args.limit:g} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
