#!/usr/bin/env python3
"""How fast `amelia watch` answers a save, and what it costs while it waits.

    python benchmarks/watch/bench.py [--edits 20] [--idle 10] [--workdir DIR] [--json]

1. Latency: the 50-step workload of benchmarks/noop (1,000 data files; appending a line to
   data/g3/f042.txt makes 9 steps run). One warm `amelia watch --json` process; the file is
   edited N times, each once the watch is idle again. For each save: save → the first
   affected step started, and save → the last affected step finished, from the events'
   times (the same clock: one machine) against the time the save was written. Medians.
2. Idle CPU: a watch over a tree of 10,000 files (100 directories of 100 files, every one
   an input), once its first run is over: user+sys CPU seconds of the watch process over
   the idle interval, as a percentage of one core (from /proc/PID/stat).

Targets (issue 13): < 0.15 s, < 0.25 s, < 1 %. Standard library only; keep WORKDIR outside
any git work tree (amelia takes the enclosing work tree as the project root).
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
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "noop"))
import generate  # noqa: E402  (the noop benchmark's workload)

AFFECTED = {"fan3", "a3", "b3", "b2", "c3", "c2", "d3", "d2", "d1"}


class Watch:
    def __init__(self, root: Path, python: str):
        self.proc = subprocess.Popen([python, "-m", "amelia", "watch", "--json"], cwd=root,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def idle_after(self, start: int, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(start, len(self.lines)):
                if self.lines[i]["type"] == "watch_waiting":
                    return i
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        raise SystemExit(f"amelia watch did not get idle: {self.lines[start:]}\n"
                         f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(2)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def latency(workdir: Path, python: str, edits: int) -> dict:
    root = generate.generate(workdir, "amelia")
    w = Watch(root, python)
    try:
        w.idle_after(0)
        first, last = [], []
        target = root / generate.EDIT_FILE
        for i in range(edits):
            time.sleep(0.3)  # a developer's pace: each save once the last one is done
            mark = len(w.lines)
            saved = time.time()
            with open(target, "a") as f:
                f.write(f"edit {i}\n")
            end = w.idle_after(mark)
            events = w.lines[mark:end]
            starts = [e["time"] for e in events if e["type"] == "step_started" and e["step"] in AFFECTED]
            done = {e["step"]: e["time"] for e in events if e["type"] == "step_completed"}
            ran = {e["step"] for e in events if e["type"] == "step_started"}
            if ran != AFFECTED or set(done) != AFFECTED:
                raise SystemExit(f"edit {i}: ran {sorted(ran)}, finished {sorted(done)}; expected {sorted(AFFECTED)}")
            first.append(min(starts) - saved)
            last.append(max(done.values()) - saved)
        return {"edits": edits, "first_started_median_s": statistics.median(first),
                "last_finished_median_s": statistics.median(last),
                "first_started_max_s": max(first), "last_finished_max_s": max(last)}
    finally:
        w.stop()


def big_tree(workdir: Path, dirs: int = 100, files: int = 100) -> Path:
    root = workdir / "tree"
    if root.exists():
        shutil.rmtree(root)
    for d in range(dirs):
        sub = root / "data" / f"d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03d}.txt").write_text(f"{d} {f}\n")
    steps = ["amelia: 1", "name: tree", "steps:"]
    for g in range(10):  # ten steps, each reading ten directories through a recursive glob
        steps += [f"  s{g}:", f"    run: \"cat data/d{g}*/*.txt | wc -l > out/s{g}.txt\"",
                  f"    inputs: [\"data/d{g}*/**/*.txt\"]", f"    output: out/s{g}.txt"]
    (root / "out").mkdir()
    (root / "amelia.yaml").write_text("\n".join(steps) + "\n")
    return root


def idle_cpu(workdir: Path, python: str, seconds: float) -> dict:
    root = big_tree(workdir)
    w = Watch(root, python)
    try:
        w.idle_after(0)
        time.sleep(1.0)  # let the first run's after-effects settle
        c0, t0 = w.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = w.cpu_seconds(), time.monotonic()
        n = sum(1 for _ in root.glob("data/*/*.txt"))
        return {"files": n, "seconds": round(t1 - t0, 2), "cpu_seconds": round(c1 - c0, 3),
                "idle_cpu_percent": 100.0 * (c1 - c0) / (t1 - t0)}
    finally:
        w.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--idle", type=float, default=10.0, help="idle seconds measured")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "amelia-watch-bench"))
    ap.add_argument("--python", default=str(REPO / ".venv/bin/python"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lat = latency(workdir, args.python, args.edits)
    cpu = idle_cpu(workdir, args.python, args.idle)
    if args.json:
        print(json.dumps({"latency": lat, "idle": cpu, "load": os.getloadavg()}, indent=2))
        return
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print(f"{lat['edits']} saves of {generate.EDIT_FILE} (9 of 50 steps affected), one warm watch:")
    print(f"  save -> first affected step started   median {lat['first_started_median_s']:.3f} s "
          f"(max {lat['first_started_max_s']:.3f})   target < 0.15 s")
    print(f"  save -> last affected step finished   median {lat['last_finished_median_s']:.3f} s "
          f"(max {lat['last_finished_max_s']:.3f})   target < 0.25 s")
    print(f"idle watch over {cpu['files']:,} files: {cpu['cpu_seconds']:.2f} CPU s in {cpu['seconds']:.1f} s "
          f"= {cpu['idle_cpu_percent']:.2f} % of a core   target < 1 %")


if __name__ == "__main__":
    main()
