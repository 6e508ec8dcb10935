#!/usr/bin/env python3
"""Time Amelia against doit, DVC and GNU make on the noop workload.

    python benchmarks/noop/compare.py [--amelia PATH] [--reps 5] [--workdir DIR] [--tools ...] [--json]

DVC runs twice, each in its own work dir: `dvc` with a directory dep per fan stage
(shown as "dvc (dir deps)") and `dvc-files` with the 100 data files of the group
as 100 deps (shown as "dvc (file deps)").

For each tool: generate its copy of the workload, build it once (untimed for the
medians), then time REPS no-op runs, REPS one-file-changed runs and REPS `--help`
runs. Each changed run starts from the same state: data/g3/f042.txt restored and
rebuilt (untimed), then a new line is appended and the rebuild is timed.
Wall time is time.perf_counter() around the bare child; peak RSS (the largest
process of the child's tree) comes from as many extra runs under /usr/bin/time.
Checks that a no-op rewrites nothing, that each changed run rewrites and changes
exactly 9 outputs, and that all tools end with byte-identical outputs.
Standard library only.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import generate

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXPECTED = 9  # steps re-run / outputs changed by one edit (see generate.steps)
ENV = dict(os.environ, DVC_NO_ANALYTICS="1")
TIME = "/usr/bin/time"
LABELS = {"dvc": "dvc (dir deps)", "dvc-files": "dvc (file deps)"}  # names in the tables


def label(tool):
    return LABELS.get(tool, tool)


class Failed(Exception):
    pass


def run(cmd, cwd, rss=False):
    """Run cmd in cwd, output discarded; return (wall seconds, peak RSS MB or None).

    Wall time is taken on the bare command. With rss=True the command runs under
    `/usr/bin/time -f %M` instead (about 1 ms of extra wall time, so these runs are
    kept apart from the timed ones): a child's own ru_maxrss from wait4 would start
    at this script's RSS, which the kernel carries over through fork and exec.
    """
    wrap = rss and os.access(TIME, os.X_OK)
    with tempfile.NamedTemporaryFile() as err, tempfile.NamedTemporaryFile("r") as out:
        argv = [TIME, "-f", "%M", "-o", out.name, *cmd] if wrap else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise Failed(f"`{' '.join(map(str, cmd))}` exited {p.returncode} in {cwd}\n{tail}")
        if not rss:
            return wall, None
        kib = int(out.read().split()[-1]) if wrap else usage.ru_maxrss  # upper bound, see above
    return wall, kib / 1024


def snapshot(root):
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted((root / "build").glob("*.txt"))}


def diff(before, after):
    """(outputs rewritten, outputs whose content changed) between two snapshots."""
    rewritten = sum(before.get(k, (None,))[0] != v[0] for k, v in after.items())
    changed = sum(before.get(k, (0, None))[1] != v[1] for k, v in after.items())
    return rewritten, changed


def bench(tool, cmd, help_cmd, args):
    log = lambda msg: print(f"[{label(tool)}] {msg}", file=sys.stderr, flush=True)
    root = generate.generate(args.workdir, tool, dvc=args.dvc)
    log(f"workload in {root}; full build")
    r = {"build_s": run(cmd, root)[0]}
    for k in ("noop", "changed", "help"):
        r[f"{k}_s"], r[f"{k}_rss_mb"] = [], []
    r["rewritten"], r["changed"] = [], []

    def record(kind, i, result):
        """Even i: a timed run, keep its wall time; odd i: a run for its peak RSS."""
        wall, rss = result
        r[f"{kind}_rss_mb"].append(rss) if i % 2 else r[f"{kind}_s"].append(wall)

    log(f"{args.reps} no-op runs (+ as many under /usr/bin/time for RSS)")
    for i in range(2 * args.reps):
        before = snapshot(root)
        record("noop", i, run(cmd, root, rss=bool(i % 2)))
        if diff(before, snapshot(root)) != (0, 0):
            raise Failed(f"a no-op run rewrote outputs: {diff(before, snapshot(root))}")
    log(f"{args.reps} one-file-changed runs (+ as many for RSS)")
    edit = root / generate.EDIT_FILE
    original = edit.read_bytes()
    for i in range(2 * args.reps):
        edit.write_bytes(original)
        run(cmd, root)  # back to the base state, untimed
        before = snapshot(root)
        with edit.open("ab") as f:
            f.write(f"edit {i}\n".encode())  # a new line each time: no cache can replay it
        record("changed", i, run(cmd, root, rss=bool(i % 2)))
        rewritten, changed = diff(before, snapshot(root))
        r["rewritten"].append(rewritten), r["changed"].append(changed)
    log(f"{args.reps} --help runs (+ as many for RSS)")
    for i in range(2 * args.reps):
        record("help", i, run(help_cmd, root, rss=bool(i % 2)))
    for k in ("noop", "changed", "help"):
        r[f"{k}_median_s"] = statistics.median(r[f"{k}_s"])
        r[f"{k}_rss_mb_median"] = statistics.median(r[f"{k}_rss_mb"])
    r["outputs"] = {k: v[1] for k, v in snapshot(root).items()}
    return r


def tools(args):
    """tool -> (run command, help command) for each tool that can be found."""
    amelia, doit = args.amelia, str(HERE / ".venvs/doit/bin/doit")
    make = shutil.which("make") or "make"
    cmds = {"amelia": ([amelia, "run"], [amelia, "--help"]),
            "doit": ([doit], [doit, "--help"]),
            "dvc": ([args.dvc, "repro"], [args.dvc, "--help"]),
            "dvc-files": ([args.dvc, "repro"], [args.dvc, "--help"]),  # same binary
            "make": ([make], [make, "--help"])}
    found = {}
    for name in [t for t in generate.TOOLS if t in args.tools.split(",")]:
        exe = cmds[name][0][0]
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            hint = ("pass --amelia PATH or set AMELIA" if name == "amelia"
                    else "run: bash benchmarks/noop/setup_peers.sh")
            print(f"[{label(name)}] SKIPPED: no executable at {exe} ({hint})", file=sys.stderr)
            continue
        found[name] = cmds[name]
    return found


def fmt(x, nd=3):
    return f"{x:.{nd}f}"


def report(results, errors, reps):
    cols = ("tool", "build s", "no-op s", "changed s", "--help s", "no-op RSS MB",
            "changed RSS MB", "rewritten/changed")
    rows = []
    for tool, r in results.items():
        counts = sorted(set(zip(r["rewritten"], r["changed"])))
        rows.append((label(tool), fmt(r["build_s"]), fmt(r["noop_median_s"]), fmt(r["changed_median_s"]),
                     fmt(r["help_median_s"]), fmt(r["noop_rss_mb_median"], 1),
                     fmt(r["changed_rss_mb_median"], 1),
                     " ".join(f"{a}/{b}" for a, b in counts)))
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    line = lambda row: "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                                 for i, (v, w) in enumerate(zip(row, widths)))
    print(f"medians of {reps} runs (build: one run); rewritten/changed expects {EXPECTED}/{EXPECTED}")
    print(line(cols))
    for row in rows:
        print(line(row))
    for tool, msg in errors.items():
        print(f"{label(tool)}: FAILED: {msg.splitlines()[0]}")
    ratios = {}
    if "amelia" in results:
        a = results["amelia"]
        print("\npeer time / amelia time (above 1: amelia is faster)")
        w = max(len(label(t)) for t in results) + 2
        print(f"{'tool':{w}}{'no-op':>10}{'changed':>10}{'--help':>10}")
        for tool, r in results.items():
            if tool != "amelia":
                ratios[tool] = {k: r[f"{k}_median_s"] / a[f"{k}_median_s"]
                                for k in ("noop", "changed", "help")}
                print(f"{label(tool):{w}}" + "".join(f"{v:>9.2f}x" for v in ratios[tool].values()))
    else:
        print("\nno amelia figures, so no ratios")
    return ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amelia", default=os.environ.get("AMELIA", str(REPO / ".venv/bin/amelia")),
                    help="amelia executable (default: $AMELIA, else <repo>/.venv/bin/amelia)")
    ap.add_argument("--dvc", default=os.environ.get("DVC", str(HERE / ".venvs/dvc/bin/dvc")))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "amelia-noop-bench"),
                    help="where the workloads go; keep it outside any git work tree")
    ap.add_argument("--tools", default=",".join(generate.TOOLS),
                    help=f"comma-separated subset of {','.join(generate.TOOLS)} "
                         "(dvc: directory deps, dvc-files: one dep per data file)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    if set(args.tools.split(",")) - set(generate.TOOLS):
        ap.error(f"--tools: choose from {','.join(generate.TOOLS)}")

    results, errors = {}, {}
    for tool, (run, help_cmd) in tools(args).items():
        try:
            results[tool] = bench(tool, run, help_cmd, args)
        except (Failed, OSError) as e:
            errors[tool] = str(e)
            print(f"[{label(tool)}] FAILED, skipped: {e}", file=sys.stderr)

    ratios = report(results, errors, args.reps)
    ok = True
    outputs = {t: r.pop("outputs") for t, r in results.items()}
    if len(outputs) > 1:
        first, *rest = outputs
        diffs = [t for t in rest if outputs[t] != outputs[first]]
        print(f"\noutputs byte-identical across {', '.join(map(label, outputs))}: "
              + ("yes" if not diffs else
                 f"NO ({', '.join(map(label, diffs))} differ from {label(first)})"))
        ok = not diffs
    bad = [t for t, r in results.items() if set(r["rewritten"]) | set(r["changed"]) != {EXPECTED}]
    if bad:
        print(f"unexpected rewritten/changed counts for: {', '.join(map(label, bad))}")
    if args.json:
        print(json.dumps({"reps": args.reps, "expected_reruns": EXPECTED, "tools": results,
                          "labels": {t: label(t) for t in results},
                          "errors": errors, "ratios_vs_amelia": ratios,
                          "outputs_identical": ok}, indent=2))
    sys.exit(0 if ok and not bad and not errors and results else 1)


if __name__ == "__main__":
    main()
