#!/usr/bin/env python3
"""Does a slow step hold back unrelated short chains? Wall time against the longest path.

    .venv/bin/python benchmarks/schedule/schedule.py [--slow 3] [--chains 4] [--length 3]
        [--step 0.2] [--jobs J,...] [--reps 3] [--amelia-path PATH ...] [--keep] [--json]

Workload: one step `slow` (sleep SLOW) beside CHAINS independent chains of LENGTH
steps; each chain step sleeps STEP, then writes its output: its predecessor's output
plus a line `id start end` (`date +%s.%N` before the sleep and after it). For each
amelia, each time on a fresh copy (no .amelia/, no build/):
  - start-up: `amelia run` of a project of one trivial step;
  - `amelia run --jobs J` of the workload; J defaults to CHAINS + 1, the most steps
    that can be runnable at once, so that no runnable step waits for a slot;
  - longest path = max(SLOW, LENGTH x STEP, (SLOW + CHAINS x LENGTH x STEP) / J)
    + start-up (the last term only binds when J is small); target: wall <= 1.10 x it;
    the excess (wall - longest path) is printed too, as start-up dilutes the ratio;
  - the wait: how long after a chain's first step ended its second one started, read
    from the stamps (the issue: about SLOW seconds when a slow step blocks the level).
Medians of REPS, after one uncounted warm-up; the waits over all chains and reps
(median and max).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ left in the repo
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import Failed, add_options, amelias, loadavg, log, scratch, table, timed  # noqa: E402

TARGET = 1.10  # wall / longest path


def q(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML scalar


def stamp(sid: str, sleep: float, out: str, prev: str | None = None) -> str:
    """A command: sleep, then write prev's content and the line `sid start end` to out."""
    keep = f"cat {prev}; " if prev else ""
    return (f"mkdir -p build && s=$(date +%s.%N) && sleep {sleep:g} && "
            f'{{ {keep}echo "{sid} $s $(date +%s.%N)"; }} > {out}')


def workload(root: Path, a) -> None:
    steps = [("slow", stamp("slow", a.slow, "build/slow.txt"), None, "build/slow.txt")]
    for c in range(a.chains):
        prev = None
        for k in range(a.length):
            sid, out = f"c{c}_{k}", f"build/c{c}_{k}.txt"
            steps.append((sid, stamp(sid, a.step, out, prev), prev, out))
            prev = out
    lines = ["amelia: 1", "name: schedule-bench", "steps:"]
    for sid, cmd, prev, out in steps:
        lines += [f"  {sid}:", f"    run: {q(cmd)}", f"    output: {q(out)}"]
        if prev:
            lines.append(f"    inputs: [{q(prev)}]")
    (root / "amelia.yaml").write_text("\n".join(lines) + "\n")


def trivial(root: Path) -> None:
    (root / "amelia.yaml").write_text(
        "amelia: 1\nname: startup\nsteps:\n  t:\n"
        "    run: mkdir -p build && echo hi > build/t.txt\n    output: build/t.txt\n")


def waits(root: Path, a) -> list:
    """Per chain: start of its second step - end of its first, from the stamps."""
    out = []
    for c in range(a.chains):
        last = root / f"build/c{c}_{a.length - 1}.txt"
        rows = {sid: (float(s), float(e)) for sid, s, e in
                (line.split() for line in last.read_text().splitlines())}
        if len(rows) != a.length:
            raise Failed(f"{last}: {len(rows)} stamps, expected {a.length}")
        out.append(rows[f"c{c}_1"][0] - rows[f"c{c}_0"][1])
    return out


def bench(am, jobs: int, a, tmp: Path) -> dict:
    startup, walls, ws = [], [], []
    for i in range(a.reps + 1):  # run 0 warms the caches and is not counted
        one = Path(tempfile.mkdtemp(prefix=f"{am.label}-trivial-", dir=tmp))
        trivial(one)
        s = timed(am.argv("run"), one, am.env(), a.timeout)
        root = Path(tempfile.mkdtemp(prefix=f"{am.label}-j{jobs}-", dir=tmp))
        workload(root, a)
        wall = timed(am.argv("run", "--jobs", str(jobs)), root, am.env(), a.timeout)
        if i:
            startup.append(s), walls.append(wall)
            ws += waits(root, a)
    s = statistics.median(startup)
    work = max(a.slow, a.length * a.step, (a.slow + a.chains * a.length * a.step) / jobs)
    wall = statistics.median(walls)
    return {"amelia": am.label, "jobs": jobs, "startup_s": s, "longest_path_s": work + s,
            "wall_s": wall, "walls_s": walls, "ratio": wall / (work + s),
            "wait_median_s": statistics.median(ws), "wait_max_s": max(ws), "waits_s": ws}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow", type=float, default=3.0, help="seconds of the slow step (3)")
    ap.add_argument("--chains", type=int, default=4, help="short chains (4)")
    ap.add_argument("--length", type=int, default=3, help="steps per chain (3, at least 2)")
    ap.add_argument("--step", type=float, default=0.2, help="seconds of a chain step (0.2)")
    ap.add_argument("--jobs", help="amelia run --jobs J, comma-separated (default: CHAINS + 1)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60, help="seconds before a run is killed (60)")
    add_options(ap)
    a = ap.parse_args()
    if a.length < 2:
        ap.error("--length must be at least 2")
    jobs = [int(j) for j in a.jobs.split(",")] if a.jobs else [a.chains + 1]
    log(f"load average at start: {loadavg()}")
    results, errors = [], []
    try:
        ams = amelias(a)
        with scratch("amelia-schedule-", a.keep) as tmp:
            for j in jobs:
                for am in ams:
                    log(f"{am.label}: --jobs {j}, {a.reps} reps")
                    try:
                        results.append(bench(am, j, a, tmp))
                    except Failed as e:  # report it, and go on with the others
                        log(f"{am.label}: FAILED: {e}")
                        errors.append(f"{am.label} --jobs {j}: FAILED: {str(e).splitlines()[0]}")
    except Failed as e:
        sys.exit(f"FAILED: {e}")
    log(f"load average at end: {loadavg()}")

    print(f"slow step {a.slow:g} s beside {a.chains} chains of {a.length} x {a.step:g} s; "
          f"medians of {a.reps} clean runs; target: wall <= {TARGET:.2f} x longest path")
    cols = ["amelia", "jobs", "start-up s", "longest path s", "wall s", "excess s", "wall/path",
            "target", "2nd-step wait s (median / max)"]
    table(cols, [[r["amelia"], r["jobs"], f"{r['startup_s']:.2f}", f"{r['longest_path_s']:.2f}",
                  f"{r['wall_s']:.2f}", f"{r['wall_s'] - r['longest_path_s']:.2f}", f"{r['ratio']:.2f}",
                  "met" if r["ratio"] <= TARGET else "missed",
                  f"{r['wait_median_s']:.2f} / {r['wait_max_s']:.2f}"] for r in results])
    for e in errors:
        print(e)
    if a.json:
        print(json.dumps({"params": {k: getattr(a, k) for k in ("slow", "chains", "length", "step", "reps")},
                          "results": results, "errors": errors}, indent=2))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
