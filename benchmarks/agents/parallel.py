#!/usr/bin/env python3
"""Time 8 independent agent steps against a fake OpenAI server that takes 1 s a call.

    .venv/bin/python benchmarks/agents/parallel.py [--reps 3] [--steps 8] [--latency 1.0]
                                                   [--amelia PATH] [--workdir DIR] [--json]

Starts tests/fakes/openai_server.py as a subprocess (--latency 1.0 --verbose) and
writes a project (outside any git work tree) whose amelia.yaml has STEPS independent
agent steps, each with its own inline prompt and output, on the model
{provider: openai, base_url: <the fake>, model: fake-model}.

Measured (medians of REPS runs of `amelia run --force-all`, on a store where the
pipeline file is already resolved, as for a developer re-running a pipeline; one
untimed warm-up run from an empty store first):
  - `amelia run --jobs STEPS --force-all`: the wall time of the whole process;
  - `amelia run` with nothing to do (the same project, cached): the bare process start,
    which includes Python, Amelia's imports, loading the store and planning;
  - `amelia run --jobs 1 --force-all`: for contrast (expect STEPS x latency);
  - the target "under 1.5 s plus the process start", read two ways: (a) strictly, with
    the no-op run as the process start; (b) with the process start as everything
    before the first model call (Python, Amelia, LangGraph's and the SDK's imports,
    the graph), so that what remains is the calls, their overlap and the finish;
  - where the parallel run's time goes, from the events Amelia records in
    .amelia/state.db (run_started, step_started, model_called with its latency);
  - how many model calls overlapped at peak, seen from both sides: the server's
    request log (each line is written when the answer starts, `latency` s after the
    request arrived) and the call intervals Amelia records (usage.created - latency);
  - the import time of langgraph.graph, openai, networkx and jsonschema in a fresh
    interpreter, and the teardown they add at exit: a run with work pays all of them
    (the no-op run imports none).
Standard library only.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import REPO, Failed, in_git_tree, loadavg, logger, parser, run_main

log = logger("parallel")

HERE = Path(__file__).resolve().parent
FAKE = REPO / "tests" / "fakes" / "openai_server.py"
TARGET_S = 1.5  # the parallel run should take under TARGET_S + the process start


# -- the fake server ---------------------------------------------------------------------

class FakeServer:
    """tests/fakes/openai_server.py as a subprocess; its request log timestamped here."""

    def __init__(self, python: str, latency: float):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [python, str(FAKE), "--port", "0", "--latency", str(latency), "--verbose"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env)
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise Failed(f"the fake server did not start: {self.proc.stderr.read()[-2000:]}")
        self.answers: list[float] = []  # time.time() of each POST's answer line
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            if "POST /v1/chat/completions" in line:
                with self._lock:
                    self.answers.append(time.time())

    def take(self) -> list[float]:
        with self._lock:
            out, self.answers = self.answers, []
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the project -------------------------------------------------------------------------

def write_project(root: Path, base_url: str, steps: int) -> None:
    lines = ["amelia: 1", "name: parallel-agents", "models:",
             f"  fake: {{provider: openai, base_url: {json.dumps(base_url)}, model: fake-model}}",
             "steps:"]
    for i in range(steps):
        lines += [f"  s{i}:",
                  "    agent: {model: fake, system: You are a terse assistant.}",
                  f"    prompt: Write note number {i} about parallel builds.",
                  f"    output: out/s{i}.txt"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "amelia.yaml").write_text("\n".join(lines) + "\n")


def fresh(root: Path) -> None:
    shutil.rmtree(root / ".amelia", ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)


def run(cmd, cwd) -> tuple[float, float]:
    """Run cmd (output discarded); return (wall seconds, time.time() at the start)."""
    with tempfile.TemporaryFile() as err:
        started = time.time()
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err)
        wall = time.perf_counter() - t0
        if p.returncode:
            err.seek(0)
            raise Failed(f"`{' '.join(map(str, cmd))}` exited {p.returncode}:\n"
                         f"{err.read().decode(errors='replace')[-2000:]}")
    return wall, started


def last_run(amelia: str, root: Path) -> dict:
    p = subprocess.run([amelia, "show", "last", "--json"], cwd=root, capture_output=True,
                       text=True)
    if p.returncode:
        raise Failed(f"amelia show last --json exited {p.returncode}: {p.stderr[-1000:]}")
    return json.loads(p.stdout)


def recorded(root: Path, run_id: str) -> dict:
    """The run's events and model calls, read from .amelia/state.db (read-only)."""
    db = sqlite3.connect(f"file:{root / '.amelia' / 'state.db'}?mode=ro", uri=True)
    try:
        events = [(t, typ, json.loads(data)) for t, typ, data in db.execute(
            "SELECT time, type, data FROM events WHERE run_id=? ORDER BY seq", (run_id,))]
        calls = [(created - latency, created, step) for step, latency, created in db.execute(
            "SELECT step, latency, created FROM usage WHERE run_id=?", (run_id,))]
    finally:
        db.close()
    return {"events": events, "calls": calls}


def peak_overlap(intervals) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                   key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = cur = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def breakdown(started: float, wall: float, rec: dict) -> dict:
    """Where a run's wall time went, in seconds, from Amelia's own event times."""
    ev = rec["events"]
    t_run = next(t for t, typ, _ in ev if typ == "run_started")
    t_step = min(t for t, typ, _ in ev if typ == "step_started")
    t_done = next(t for t, typ, _ in ev if typ == "run_finished")
    calls = rec["calls"]
    first_call = min(a for a, _, _ in calls)
    last_answer = max(b for _, b, _ in calls)
    return {
        "to_run_started": t_run - started,  # interpreter, imports, store, plan
        "to_first_step": t_step - t_run,  # the runner: LangGraph import, graph build
        "to_first_call": first_call - t_step,  # render, provider (openai SDK import, client)
        "calls_span": last_answer - first_call,  # first call start → last answer
        "call_latency_median": statistics.median(b - a for a, b, _ in calls),
        "call_latency_max": max(b - a for a, b, _ in calls),
        "to_run_finished": t_done - last_answer,  # write outputs, records
        "to_exit": started + wall - t_done,  # teardown, interpreter exit
    }


IMPORTS = ("langgraph.graph", "openai", "networkx", "jsonschema")


def import_time(python: str, modules: str, reps: int) -> tuple[float, float]:
    """(import seconds, interpreter teardown seconds after it), medians over fresh processes.

    The teardown is the time from the child's last statement to its exit as seen here:
    freeing the modules' objects at interpreter exit.
    """
    code = ("import sys, time\nt = time.perf_counter()\nimport " + modules + "\n"
            "sys.stdout.write('%.6f %.6f' % (time.perf_counter() - t, time.time()))\n")
    imports, teardowns = [], []
    for _ in range(reps):
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=REPO)
        ended = time.time()
        if p.returncode:
            raise Failed(f"import {modules} failed: {p.stderr[-500:]}")
        took, last = map(float, p.stdout.split())
        imports.append(took)
        teardowns.append(ended - last)
    return statistics.median(imports), statistics.median(teardowns)


def bench(args) -> dict:
    python = str(Path(args.amelia).parent / "python")
    if not os.access(python, os.X_OK):
        python = sys.executable
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="amelia-agents-bench-"))
    root = workdir / "project"
    workdir.mkdir(parents=True, exist_ok=True)
    if in_git_tree(workdir):
        raise Failed(f"{workdir} is inside a git work tree: Amelia would take that tree as "
                     f"its project root; pass --workdir outside it")
    srv = FakeServer(python, args.latency)
    log(f"fake server at {srv.base_url} (latency {args.latency} s); project in {root}")
    try:
        write_project(root, srv.base_url, args.steps)
        amelia = args.amelia
        res = {"steps": args.steps, "latency_s": args.latency, "reps": args.reps,
               "base_url": srv.base_url, "project": str(root), "loadavg_start": loadavg()}

        def timed(jobs: int, label: str) -> dict:
            walls, details = [], []
            fresh(root)
            run([amelia, "run", "--jobs", str(jobs)], root)  # warm-up: resolves the file
            time.sleep(0.05)
            srv.take()
            for i in range(args.reps):
                srv.take()
                wall, started = run([amelia, "run", "--jobs", str(jobs), "--force-all"], root)
                time.sleep(0.05)  # let the server's last log lines arrive
                answers = srv.take()
                info = last_run(amelia, root)
                counts = info["summary"]["counts"]
                if counts["ran"] != args.steps or counts["failed"]:
                    raise Failed(f"{label} run {i}: expected {args.steps} steps to run, "
                                 f"got {counts}")
                rec = recorded(root, info["id"])
                if len(rec["calls"]) != args.steps or len(answers) != args.steps:
                    raise Failed(f"{label} run {i}: {len(rec['calls'])} calls recorded, "
                                 f"{len(answers)} answered by the server; expected {args.steps}")
                d = breakdown(started, wall, rec)
                d["wall"] = wall
                d["run_duration"] = info["summary"]["duration"]
                d["peak_server"] = peak_overlap([(t - args.latency, t) for t in answers])
                d["peak_client"] = peak_overlap([(a, b) for a, b, _ in rec["calls"]])
                walls.append(wall)
                details.append(d)
                log(f"{label} run {i + 1}/{args.reps}: {wall:.3f} s, peak overlap "
                    f"{d['peak_server']} (server) / {d['peak_client']} (amelia)")
            med = {k: statistics.median(d[k] for d in details) for k in details[0]}
            return {"walls": walls, "median": med, "runs": details}

        res["parallel"] = timed(args.steps, f"--jobs {args.steps}")
        noops = []
        for _ in range(args.reps):
            noops.append(run([amelia, "run", "--jobs", str(args.steps)], root)[0])
        counts = last_run(amelia, root)["summary"]["counts"]
        if counts["ran"] or counts["cached"] != args.steps:
            raise Failed(f"the no-op run was not a no-op: {counts}")
        res["noop"] = {"walls": noops, "median": statistics.median(noops)}
        log(f"no-op runs: {', '.join(f'{w:.3f}' for w in noops)} s")
        res["serial"] = timed(1, "--jobs 1")
        log("import times (fresh interpreter each)")
        res["imports"] = {m: import_time(python, m, args.reps)
                          for m in (*IMPORTS, ", ".join(IMPORTS))}
        res["loadavg_end"] = loadavg()
        return res
    finally:
        srv.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def report(r) -> bool:
    par, ser = r["parallel"]["median"], r["serial"]["median"]
    noop = r["noop"]["median"]
    target = TARGET_S + noop
    n, lat = r["steps"], r["latency_s"]
    ok = par["wall"] < target
    f = lambda x: f"{x:.3f}"
    print(f"{n} independent agent steps, fake OpenAI server answering after {lat:g} s; "
          f"medians of {r['reps']} runs, of --force-all on a warm store")
    print(f"load average (1, 5, 15 min): {r['loadavg_start']} at the start, "
          f"{r['loadavg_end']} at the end")
    print(f"  amelia run --jobs {n}      {f(par['wall'])} s wall "
          f"(runs: {', '.join(map(f, r['parallel']['walls']))})")
    print(f"  no-op amelia run          {f(noop)} s  = the process start "
          f"(runs: {', '.join(map(f, r['noop']['walls']))})")
    print(f"  difference                {f(par['wall'] - noop)} s  "
          f"(target: under {TARGET_S:g} s)")
    print(f"  target (a), strict: {f(par['wall'])} < {TARGET_S:g} + {f(noop)} = {f(target)} s: "
          + ("MET" if ok else f"MISSED by {f(par['wall'] - target)} s"))
    start = par["to_run_started"] + par["to_first_step"] + par["to_first_call"]
    rest = par["wall"] - start
    ok_b = rest < TARGET_S
    print(f"  target (b): process start to the first model call {f(start)} s; the rest "
          f"{f(rest)} s < {TARGET_S:g} s: " + ("MET" if ok_b else f"MISSED by {f(rest - TARGET_S)} s"))
    print(f"  amelia run --jobs 1       {f(ser['wall'])} s wall "
          f"(runs: {', '.join(map(f, r['serial']['walls']))}; {n} x {lat:g} s = {n * lat:g} s;"
          f" calls {f(ser['calls_span'])} s first to last, {f(ser['call_latency_median'])} s "
          f"each)")
    print(f"  speed-up --jobs {n} over --jobs 1: {ser['wall'] / par['wall']:.2f}x")
    peaks = lambda k, which: sorted({d[which] for d in r[k]['runs']})
    print(f"\npeak overlapping model calls (max possible {n}):")
    for k, label in (("parallel", f"--jobs {n}"), ("serial", "--jobs 1")):
        print(f"  {label:10} server log: {'/'.join(map(str, peaks(k, 'peak_server')))}   "
              f"amelia's call records: {'/'.join(map(str, peaks(k, 'peak_client')))}")
    print(f"\nwhere the --jobs {n} wall time goes (medians, s; from the events in state.db):")
    rows = [("process start → run_started (Python, imports, compile, store, plan)",
             "to_run_started"),
            ("run_started → first step_started (runner: LangGraph import, graph)",
             "to_first_step"),
            ("first step_started → first model call (render, openai SDK import, client)",
             "to_first_call"),
            ("first call start → last answer", "calls_span"),
            ("   one call's latency as recorded by amelia: median", "call_latency_median"),
            ("   max", "call_latency_max"),
            ("last answer → run_finished (outputs, records)", "to_run_finished"),
            ("run_finished → process exit (summary, interpreter teardown)", "to_exit")]
    for label, k in rows:
        print(f"  {label:76} {f(par[k])}")
    print(f"  {'(amelia run duration as reported)':76} {f(par['run_duration'])}")
    print(f"\nimports a run with this work pays and the no-op does not (fresh interpreter, "
          f"median of {r['reps']}; s):")
    print(f"  {'import':52} {'import':>7} {'exit':>7}")
    for m, (t, down) in r["imports"].items():
        print(f"  {m:52} {f(t):>7} {f(down):>7}")
    print("  (exit: the interpreter's teardown after those imports, from the last statement "
          "to the process's end)")
    return ok


def main():
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--latency", type=float, default=1.0, help="the fake server's seconds a call")
    run_main(ap.parse_args(), bench, report)


if __name__ == "__main__":
    main()
