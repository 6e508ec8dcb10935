"""The ui's project page: pipelines, the chosen one's steps and DAG, recent runs, tokens
and cost per run and per model (inline SVG), RAG sources, and a health panel (filled
from /api/health, which the page's script fetches: doctor's checks take a moment).

Reads only; every text from the project goes through html.esc.
"""

from __future__ import annotations

import json
import time

from .html import STATE_CLASSES, badge, dag_of, esc

CHART_W, CHART_H = 720, 180
PALETTE = 6  # colours of models in the chart (classes m0..m5); each bar also has a <title>

CSS = """
.dash-cols{display:grid;gap:0 28px;grid-template-columns:minmax(0,1fr)}
@media (min-width:1000px){.dash-cols{grid-template-columns:minmax(0,1.4fr) minmax(0,1fr)}}
.run-panel{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:2px 14px 10px}
.run-panel h2{border:0;margin:.5em 0 .3em}
.controls{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:center}
.controls button{font:inherit;padding:.3rem .9rem;border-radius:6px;border:1px solid var(--line);
background:var(--bg);color:var(--fg);cursor:pointer}
.controls button#run-start:not(:disabled){background:var(--ran);border-color:var(--ran);color:#fff}
.controls button:disabled{opacity:.55;cursor:default}
#run-status{color:var(--muted)}
.run-bar{margin:.2em 0 .6em}
nav[aria-label="Other pipelines"]{margin-top:.5em}
.chart{max-width:100%;height:auto}
.chart .axis{stroke:currentColor;stroke-opacity:.4}
.chart text{font-size:11px;fill:currentColor}
.chart .m0{fill:#4e79a7}.chart .m1{fill:#f28e2b}.chart .m2{fill:#59a14f}
.chart .m3{fill:#b07aa1}.chart .m4{fill:#edc948}.chart .m5{fill:#76b7b2}.chart .none{fill:#9aa0a6}
.legend{display:flex;flex-wrap:wrap;gap:.8rem;list-style:none;padding:0}
.legend span.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
.legend .m0{background:#4e79a7}.legend .m1{background:#f28e2b}.legend .m2{background:#59a14f}
.legend .m3{background:#b07aa1}.legend .m4{background:#edc948}.legend .m5{background:#76b7b2}
.legend .none{background:#9aa0a6}
.health-warn{color:var(--cancelled);font-weight:600}.health-fail{color:var(--failed);font-weight:700}
table.runs th,table.runs td{white-space:nowrap}table.runs td.what{white-space:normal}
details.checks>summary{cursor:pointer;color:var(--link);margin:.4em 0}
"""


def when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def seconds(value) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def money(value) -> str:
    return "" if value is None else f"${value:.4f}"


def tokens(value) -> str:
    return "" if not value else f"{int(value):,}"


def body(project: str, refs: list, chosen, pview: dict | None, states: dict, error: str, runs: list,
         models: dict, sources: list) -> str:
    """The dashboard's <main> content. project: the root folder; refs: listed pipelines;
    chosen: the ref shown (and run by Start); pview: pipeline_view of it (None when invalid:
    `error` says why); states: step → state shown on its node (its last run's); runs:
    recent runs (dicts with `usage` and `models`); models: model → totals; sources: (name,
    indexed, paths)."""
    import os

    parts = [f'<header><h1>Amelia · <code>{esc(os.path.basename(project) or project)}</code></h1>'
             f'<p class="sub">the command center of {esc(project)}</p></header>',
             _controls(refs, chosen),
             _steps(chosen, pview, states, error),
             f'<div id="runs">{runs_section(runs, models)}</div>',
             '<div class="dash-cols">',
             '<section id="health" aria-labelledby="health-h"><h2 id="health-h">Health</h2>'
             '<p id="health-body" role="status">Checking… (<a href="/api/health">the checks as JSON</a>)</p>'
             '</section>',
             _sources(sources),
             '</div>']
    return "\n".join(parts)


def _controls(refs: list, chosen) -> str:
    if not refs or chosen is None:
        return ('<section class="run-panel" aria-labelledby="run-h"><h2 id="run-h">Run</h2>'
                '<p>No pipeline file here: a *.yaml with <code>amelia:</code> at its root '
                '(<code>amelia init</code> makes one).</p></section>')
    others = [r for r in refs if r.name != chosen.name]
    nav = ("" if not others else
           '<nav aria-label="Other pipelines">Other pipelines: '
           + " · ".join(f'<a href="/?pipeline={_q(r.name)}">{esc(r.name)}</a>' for r in others) + "</nav>")
    return (f'<section class="run-panel" aria-labelledby="run-h"><h2 id="run-h">Run</h2>'
            f'<div class="controls"><span>Pipeline <b>{esc(chosen.name)}</b></span>'
            f'<button type="button" id="run-start">Start run</button>'
            f'<button type="button" id="run-cancel" disabled>Cancel run</button>'
            f'<span id="run-status" role="status" aria-live="polite">No run going.</span>'
            f'<a id="run-link" hidden href="/">the run</a></div>{nav}</section>')


def _steps(chosen, pview: dict | None, states: dict, error: str) -> str:
    title = esc(chosen.name) if chosen else ""
    if pview is None:
        inner = f'<p role="alert">{esc(error)}</p>' if error else "<p>No pipeline.</p>"
        return f'<section aria-labelledby="steps-h"><h2 id="steps-h">Steps {title}</h2>{inner}</section>'
    rows = []
    for s in pview["steps"]:
        state = states.get(s["id"], "pending")
        rows.append(f'<tr class="{STATE_CLASSES.get(state, "")}" data-step="{esc(s["id"])}">'
                    f'<th scope="row"><code>{esc(s["id"])}</code></th>'
                    f'<td>{esc(s["kind"])}</td><td>{badge(state)}</td>'
                    f'<td>{esc(", ".join(s["needs"]))}</td><td>{esc(s.get("description") or "")}</td></tr>')
    return (f'<section aria-labelledby="steps-h"><h2 id="steps-h">Steps of {title} '
            f'<small>({len(pview["steps"])}, pipeline {esc(pview["name"])})</small></h2>'
            f'{dag_of([dict(s, state=states.get(s["id"], "pending")) for s in pview["steps"]])}'
            f'<div class="table-wrap"><table class="steps" id="dash-steps"><caption class="skip">Steps</caption>'
            f'<thead><tr><th scope="col">Step</th><th scope="col">Kind</th><th scope="col">State</th>'
            f'<th scope="col">Needs</th><th scope="col">Description</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></section>')


def runs_section(runs: list, models: dict) -> str:
    """Recent runs beside the tokens-and-cost chart and the per-model totals (also served
    alone, as /parts/runs, for the page to swap in when a run ends)."""
    if not runs:
        return ('<section aria-labelledby="runs-h"><h2 id="runs-h">Recent runs</h2><p>No runs yet.</p>'
                '</section>')
    rows = []
    for r in runs:
        u = r.get("usage") or {}
        counts = (r.get("summary") or {}).get("counts") or {}
        what = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        rows.append(f'<tr><th scope="row"><a href="/runs/{esc(r["id"])}"><code>{esc(r["id"])}</code></a></th>'
                    f'<td><span class="badge {STATE_CLASSES.get(_run_state(r["status"]), "")}">'
                    f'{esc(r["status"])}</span></td>'
                    f'<td class="what">{esc(what)}</td><td title="{esc(when(r.get("started")))}">'
                    f'{esc(when(r.get("started"))[5:16])}</td>'
                    f'<td class="num">{esc(seconds(_duration(r)))}</td>'
                    f'<td class="num">{esc(tokens((u.get("input_tokens") or 0) + (u.get("output_tokens") or 0)))}</td>'
                    f'<td class="num">{esc(money(u.get("cost")))}</td></tr>')
    table = ('<div class="table-wrap"><table class="runs"><caption class="skip">Recent runs, newest first</caption>'
             '<thead><tr><th scope="col">Run</th><th scope="col">Status</th><th scope="col">Steps</th>'
             '<th scope="col">Started</th><th scope="col">Time</th><th scope="col">Tokens</th>'
             f'<th scope="col">Cost</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return ('<div class="dash-cols">'
            f'<section aria-labelledby="runs-h"><h2 id="runs-h">Recent runs</h2>{table}</section>'
            '<section aria-labelledby="usage-h"><h2 id="usage-h">Tokens and cost</h2>'
            f'{chart(runs, list(models))}{_models_table(models)}</section></div>')


def _run_state(status: str) -> str:
    return {"ok": "ran", "running": "running", "failed": "failed", "interrupted": "cancelled",
            "cancelled": "cancelled", "died": "failed"}.get(status, "pending")


def _duration(r: dict):
    if r.get("finished") and r.get("started"):
        return r["finished"] - r["started"]
    return (r.get("summary") or {}).get("duration")


def chart(runs: list, model_names: list) -> str:
    """Tokens per run (oldest left), each bar stacked by model; the cost above it."""
    shown = list(reversed(runs))
    if not any(r.get("models") for r in shown):
        return "<p>No model calls in these runs.</p>"
    colour = {m: f"m{i % PALETTE}" for i, m in enumerate(model_names)}
    top = max(sum(v["input_tokens"] + v["output_tokens"] for v in (r.get("models") or {}).values())
              for r in shown) or 1
    left, bottom, head = 48, 24, 18
    inner_h = CHART_H - bottom - head
    step = (CHART_W - left - 8) / max(len(shown), 1)
    bar = max(min(step * 0.7, 40), 2)
    out = [f'<svg class="chart" role="img" aria-labelledby="chart-t" viewBox="0 0 {CHART_W} {CHART_H}" '
           f'width="{CHART_W}" height="{CHART_H}" xmlns="http://www.w3.org/2000/svg">'
           f'<title id="chart-t">Tokens per run, oldest left, by model; cost above each bar</title>',
           f'<line class="axis" x1="{left}" y1="{CHART_H - bottom}" x2="{CHART_W - 4}" y2="{CHART_H - bottom}"/>',
           f'<text x="4" y="{head + 4}">{esc(tokens(top))}</text><text x="4" y="{CHART_H - bottom}">0</text>']
    every = max(1, int(-(-44 // step)))  # a time label per ~44 px
    for i, r in enumerate(shown):
        x = left + i * step + (step - bar) / 2
        if (len(shown) - 1 - i) % every == 0:  # the newest run always labelled
            out.append(f'<text x="{x + bar / 2:.1f}" y="{CHART_H - bottom + 14}" text-anchor="middle">'
                       f'{esc(when(r.get("started"))[11:16])}</text>')
        y = CHART_H - bottom
        cost = None
        known = True
        for model, v in sorted((r.get("models") or {}).items()):
            n = v["input_tokens"] + v["output_tokens"]
            h = inner_h * n / top
            y -= h
            out.append(f'<rect class="{colour.get(model, "none")}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}"><title>{esc(r["id"])}: {esc(model)}, {n:,} tokens'
                       f'{", " + money(v["cost"]) if v["cost"] is not None else ""}</title></rect>')
            if v["cost"] is None:
                known = False
            else:
                cost = (cost or 0) + v["cost"]
        if cost is not None and known:
            out.append(f'<text x="{x:.1f}" y="{y - 3:.1f}">{esc(money(cost))}</text>')
    out.append("</svg>")
    legend = "".join(f'<li><span class="swatch {colour[m]}"></span>{esc(m)}</li>' for m in model_names)
    return "".join(out) + f'<ul class="legend" aria-label="Models">{legend}</ul>'


def _models_table(models: dict) -> str:
    if not models:
        return ""
    rows = "".join(f'<tr><th scope="row">{esc(m)}</th><td class="num">{v["calls"]}</td>'
                   f'<td class="num">{esc(tokens(v["input_tokens"]))}</td>'
                   f'<td class="num">{esc(tokens(v["output_tokens"]))}</td><td class="num">{esc(money(v["cost"]))}</td></tr>'
                   for m, v in models.items())
    return ('<h3>Tokens per model, over these runs</h3><div class="table-wrap"><table class="models"><thead><tr>'
            '<th scope="col">Model</th><th scope="col">Calls</th><th scope="col">Input</th>'
            f'<th scope="col">Output</th><th scope="col">Cost</th></tr></thead><tbody>{rows}</tbody>'
            '</table></div>')


def _sources(sources: list) -> str:
    if not sources:
        return ""
    rows = "".join(f'<tr><th scope="row">{esc(name)}</th><td>{"indexed" if indexed else "not indexed"}</td>'
                   f'<td>{esc(", ".join(paths))}</td></tr>' for name, indexed, paths in sources)
    return ('<section aria-labelledby="sources-h"><h2 id="sources-h">Sources</h2>'
            '<table class="sources"><thead><tr><th scope="col">Source</th><th scope="col">Index</th>'
            f'<th scope="col">Documents</th></tr></thead><tbody>{rows}</tbody></table></section>')


def usage_by_model(store, runs: list) -> dict:
    """Each run's tokens and cost per model (run["models"]), and the totals per model over
    them: from the runs' model_called events (redacted, as stored)."""
    totals: dict = {}
    for r in runs:
        per: dict = {}
        for e in store.history.events(r["id"]):
            if e.type != "model_called":
                continue
            try:
                d = json.loads(e.data)
            except (TypeError, ValueError):
                continue
            name = f"{d.get('provider') or ''}/{d.get('model') or ''}".strip("/") or "?"
            for bucket in (per.setdefault(name, _zero()), totals.setdefault(name, _zero())):
                bucket["calls"] += 1
                bucket["input_tokens"] += int(d.get("input_tokens") or 0)
                bucket["output_tokens"] += int(d.get("output_tokens") or 0)
                cost = d.get("cost")
                bucket["cost"] = None if cost is None or bucket["cost"] is None else bucket["cost"] + cost
        r["models"] = per
    return totals


def _zero() -> dict:
    return {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")
