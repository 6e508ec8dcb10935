#!/usr/bin/env python3
"""A 500-file foreach pipeline against make's pattern rule on the same files.

    python benchmarks/foreach/bench.py [--files 500] [--reps 5] [--cc] [--workdir DIR] [--json]

Three copies of one workload: N C-like sources src/fNNN.c, one object per source
(build/fNNN.o) and one link step (app, all objects concatenated):
- `amelia foreach`: `compile: {foreach: {glob: "src/*.c"}}` plus `link: {needs: [compile]}`;
- `amelia explicit`: the same N+1 steps written out (how the file looked before foreach);
- `make`: `build/%.o: src/%.c` and `app: $(OBJS)`, run as `make -j JOBS`.
The command is `tr a-z A-Z` (the tools' own cost is what is measured); `--cc` uses real
`cc -c` instead. Each tool builds once (untimed), then REPS no-op runs and REPS
one-file-changed runs are timed (a new line appended to src/f042.c, so one object and
the link are rebuilt). Checks that a no-op rebuilds nothing and that a changed run
rebuilds exactly the one object and the link. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv/bin/python")
JOBS = os.cpu_count() or 1


def command(cc: bool, src: str, obj: str) -> str:
    return f"cc -c -x c -o {obj} {src}" if cc else f"tr a-z A-Z < {src} > {obj}"


def generate(root: Path, n: int, tool: str, cc: bool) -> None:
    (root / "src").mkdir(parents=True)
    (root / "build").mkdir()
    for i in range(n):
        (root / f"src/f{i:03d}.c").write_text(f"int f{i:03d}(void) {{ return {i}; }}\n")
    link = "cat build/*.o > app"
    if tool == "make":
        (root / "Makefile").write_text(
            "SRCS := $(wildcard src/*.c)\nOBJS := $(SRCS:src/%.c=build/%.o)\n"
            f"app: $(OBJS)\n\t{link}\n"
            f"build/%.o: src/%.c\n\t{command(cc, '$<', '$@')}\n")
        return
    lines = ["amelia: 1", "name: bench", "steps:"]
    if tool == "amelia-foreach":
        cmd = command(cc, '"${{ item.path }}"', '"build/${{ item.stem }}.o"')
        lines += ["  compile:", '    foreach: {glob: "src/*.c"}', f"    run: {cmd}",
                  '    inputs: ["${{ item.path }}"]', '    output: "build/${{ item.stem }}.o"',
                  "  link:", "    needs: [compile]"]
    else:
        for i in range(n):
            lines += [f"  f{i:03d}:", f"    run: {command(cc, f'src/f{i:03d}.c', f'build/f{i:03d}.o')}",
                      f"    inputs: [src/f{i:03d}.c]", f"    output: build/f{i:03d}.o"]
        lines += ["  link:"]
    lines += [f"    run: {link}", '    inputs: ["build/*.o"]', "    output: app"]
    (root / "amelia.yaml").write_text("\n".join(lines) + "\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)  # the project root, as a user has it


def argv(tool: str) -> list:
    if tool == "make":
        return ["make", "-s", f"-j{JOBS}"]
    return [PYTHON, "-m", "amelia", "run"]


def timed(tool: str, root: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv(tool), cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def objects_newer(root: Path, since: float) -> int:
    return sum(1 for p in (root / "build").iterdir() if p.stat().st_mtime > since)


def bench(tool: str, base: Path, n: int, reps: int, cc: bool) -> dict:
    root = base / tool
    generate(root, n, tool, cc)
    first, _ = timed(tool, root)
    time.sleep(0.2)  # sources age past amelia's racy window: the memo holds them
    timed(tool, root)  # a no-op that writes the memo and the resolution cache
    noop = []
    for _ in range(reps):
        mark = time.time()
        t, out = timed(tool, root)
        noop.append(t)
        assert objects_newer(root, mark) == 0, f"{tool}: a no-op rebuilt something"
        assert tool == "make" or " 0 ran" in out, out
    changed = []
    for r in range(reps):
        time.sleep(0.05)
        with open(root / "src/f042.c", "a") as f:
            f.write(f"/* edit {r} */\n")
        mark = time.time()
        t, out = timed(tool, root)
        changed.append(t)
        assert objects_newer(root, mark) == 1, f"{tool}: not exactly one object rebuilt"
        assert (root / "app").stat().st_mtime > mark, f"{tool}: app not relinked"
        assert tool == "make" or "2 ran" in out, out
    return {"tool": tool, "build": first, "noop": statistics.median(noop),
            "changed": statistics.median(changed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cc", action="store_true", help="compile with cc -c instead of tr")
    ap.add_argument("--workdir", help="keep the projects here (default: a temporary directory)")
    ap.add_argument("--tools", nargs="+", default=["amelia-foreach", "amelia-explicit", "make"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = Path(args.workdir or tempfile.mkdtemp(prefix="amelia-foreach-"))
    try:
        rows = [bench(t, base, args.files, args.reps, args.cc) for t in args.tools]
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.files} files, {'cc -c' if args.cc else 'tr'}, {JOBS} jobs, median of {args.reps} "
          f"(load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    print(f"{'tool':<16} {'first build':>12} {'no-op':>9} {'1 changed':>10}")
    for r in rows:
        print(f"{r['tool']:<16} {r['build']:>11.2f}s {r['noop']:>8.3f}s {r['changed']:>9.3f}s")


if __name__ == "__main__":
    sys.exit(main())
