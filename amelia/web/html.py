"""HTML for `report` and `ui`: a whole self-contained page, and a run's body.

Every text from outside goes through `esc` (the view has already redacted it and shown
its control characters). The page loads nothing: CSS and JS are inline, and its Content
Security Policy allows scripts only with the page's nonce (an injected <script> or
onerror= would not run even if escaping failed) and no request but to its own origin.
"""

from __future__ import annotations

import html as _html
import secrets
import time

from .dag import STATE_MARK, css_id, dag_svg

STATES = ("ran", "cached", "failed", "skipped", "cancelled", "running", "pending", "blocked")
# The CSS class of each state, on DAG nodes, table rows and step sections alike: the ui's
# script swaps these to show a live state.
STATE_CLASSES = {s: f"state-{s}" for s in STATES}
FOLD_LINES = 40  # a longer output or log is folded in a <details>
FOLD_CHARS = 6000

CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--panel:#f6f8fa;
--link:#0550ae;--focus:#0969da;--ran:#1a7f37;--ran-bg:#dafbe1;--cached:#0550ae;--cached-bg:#ddf4ff;
--failed:#cf222e;--failed-bg:#ffebe9;--skipped:#6e7781;--skipped-bg:#eaeef2;--cancelled:#9a6700;
--cancelled-bg:#fff8c5;--running:#8250df;--running-bg:#fbefff;--pending:#6e7781;--pending-bg:#fff;
--blocked:#bc4c00;--blocked-bg:#fff1e5}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;
--panel:#151b23;--link:#4493f8;--focus:#4493f8;--ran:#3fb950;--ran-bg:#12261e;--cached:#4493f8;
--cached-bg:#121d2f;--failed:#f85149;--failed-bg:#2d1214;--skipped:#9198a1;--skipped-bg:#1c2128;
--cancelled:#d29922;--cancelled-bg:#272115;--running:#ab7df8;--running-bg:#211a33;--pending:#9198a1;
--pending-bg:#0d1117;--blocked:#db6d28;--blocked-bg:#2a1c12}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Noto Sans",sans-serif;overflow-wrap:anywhere}
main{max-width:1200px;margin:0 auto;padding:16px 20px 48px}
a{color:var(--link)}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-9999px;top:0}.skip:focus{left:8px;top:8px;background:var(--bg);padding:6px 10px;z-index:9}
h1{font-size:1.5rem;margin:.2em 0 .4em}h2{font-size:1.2rem;margin:1.6em 0 .5em;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1em 0 .3em}
.sub{color:var(--muted);margin:0 0 .8em}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.5em 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.totals{display:flex;flex-wrap:wrap;gap:10px;margin:.6em 0;padding:0;list-style:none}
.totals li{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:6px 12px}
.totals b{display:block;font-size:1.15rem}
.dag-box{overflow:auto;max-height:70vh;border:1px solid var(--line);border-radius:6px;background:var(--panel)}
svg.dag{display:block}
svg.dag .edge{fill:none;stroke:var(--muted);stroke-width:1.4}
svg.dag .arrow{fill:var(--muted)}
svg.dag .node rect{fill:var(--pending-bg);stroke:var(--pending);stroke-width:1.5}
svg.dag .node text{fill:var(--fg);font-size:13px;font-family:inherit}
svg.dag .node text.state{fill:var(--muted);font-size:11.5px}
svg.dag .node{cursor:pointer}
svg.dag .node:focus{outline:none}svg.dag .node:focus rect{stroke:var(--focus);stroke-width:3.5}
svg.dag .state-pending rect{stroke-dasharray:4 3}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;overflow-wrap:break-word}
thead th{background:var(--panel);white-space:nowrap}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border:1px solid currentColor;border-radius:999px;padding:0 8px;font-size:13px;
white-space:nowrap;font-weight:600}
details.step{border:1px solid var(--line);border-left-width:5px;border-radius:6px;margin:10px 0;background:var(--bg)}
details.step>summary{cursor:pointer;padding:8px 12px;font-weight:600;list-style-position:inside}
details.step>div{padding:0 14px 12px}
details.fold>summary{cursor:pointer;color:var(--link);margin:.3em 0}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px;white-space:pre-wrap;
overflow-wrap:anywhere;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-height:60vh;overflow:auto}
.md{border:1px solid var(--line);border-radius:6px;padding:4px 14px;overflow-x:auto}
.md table{width:auto}.md pre{max-height:none}
.md .md-h1{font-size:1.3rem}.md .md-h2{font-size:1.15rem}.md .md-h3{font-size:1.05rem}
.md h5,.md h6{margin:.8em 0 .3em}
.output h4{margin:1em 0 .3em;font-size:.95rem}
.muted{color:var(--muted)}
footer{color:var(--muted);font-size:13px;margin-top:3em}
""" + "".join(
    f".state-{s}{{--c:var(--{s});--cb:var(--{s}-bg)}}"
    f"svg.dag .state-{s} rect{{fill:var(--{s}-bg);stroke:var(--{s})}}"
    for s in STATES) + """
.badge[class*=state-]{color:var(--c);background:var(--cb)}
details.step[class*=state-]{border-left-color:var(--c)}
@media (max-width:600px){main{padding:10px 10px 32px}body{font-size:14px}th,td{padding:5px 6px}
h1{font-size:1.25rem}dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:4px}
table .wide{display:none}}
@media (prefers-reduced-motion:no-preference){svg.dag .state-running rect{animation:pulse 1.6s ease-in-out infinite}}
@keyframes pulse{50%{stroke-width:3}}
"""

# Opens a step's section from its node in the graph (click, Enter or Space) and from a
# link to it; written for the report and the ui alike (addEventListener only: the CSP
# refuses inline handlers).
RUN_SCRIPT = """
(function(){
  function openStep(sid){
    var d=document.getElementById('step-'+sid);
    if(!d)return;
    d.open=true;d.scrollIntoView({block:'start'});
    var s=d.querySelector('summary');if(s)s.focus({preventScroll:true});
  }
  function fromNode(g){return g.id.replace(/^node-/,'');}
  document.addEventListener('click',function(e){
    var g=e.target.closest&&e.target.closest('svg.dag .node');
    if(g){openStep(fromNode(g));return;}
    var a=e.target.closest&&e.target.closest('a[href^="#step-"]');
    if(a){e.preventDefault();openStep(a.getAttribute('href').slice(6));history.replaceState(null,'',a.getAttribute('href'));}
  });
  document.addEventListener('keydown',function(e){
    var g=e.target.closest&&e.target.closest('svg.dag .node');
    if(g&&(e.key==='Enter'||e.key===' ')){e.preventDefault();openStep(fromNode(g));}
  });
  if(location.hash.indexOf('#step-')===0)openStep(location.hash.slice(6));
})();
"""


def esc(text) -> str:
    """Text for an HTML element or a quoted attribute."""
    return _html.escape("" if text is None else str(text), quote=True)


def _csp(nonce: str) -> str:
    # 'self' lets the ui's page call its own server; a report opened from disk has nothing
    # to call. Scripts only with the nonce (no inline handler); styles inline (they can
    # load nothing: every fetch but connect-src is 'none'); no image but data:, no frame.
    return ("default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'unsafe-inline'; "
            "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'self'")


def page(title: str, body: str, *, script: str = "", meta=None, css: str = "") -> str:
    """A whole HTML document: inline CSS (light and dark), a skip link, `body` in <main
    id="main">, `script` inline at the end (with the page's CSP nonce; use addEventListener,
    inline on…= handlers are refused). meta: {name: content} as <meta> tags. css: more rules."""
    nonce = secrets.token_urlsafe(12)
    metas = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">\n' for k, v in (meta or {}).items())
    js = f'<script nonce="{nonce}">{script}</script>\n' if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width,initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(nonce)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"{metas}<title>{esc(title)}</title>\n<style>{CSS}{css}</style>\n</head>\n<body>\n"
        '<a class="skip" href="#main">Skip to content</a>\n'
        f'<main id="main">\n{body}\n</main>\n{js}</body>\n</html>\n')


# -- formatting ------------------------------------------------------------------------

def fmt_time(seconds) -> str:
    if seconds is None:
        return "—"
    from ..render import fmt_seconds

    return fmt_seconds(seconds)


def fmt_when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


def fmt_tokens(tokens: dict) -> str:
    i, o = tokens.get("input") or 0, tokens.get("output") or 0
    return f"{i:,} / {o:,}" if i or o else "—"


def fmt_cost(cost, calls: int) -> str:
    if not calls:
        return "—"
    return "unknown" if cost is None else f"${cost:.4f}"


def badge(state: str) -> str:
    return (f'<span class="badge {esc(STATE_CLASSES.get(state, "state-pending"))}" data-state="{esc(state)}">'
            f'{STATE_MARK.get(state, "")} {esc(state)}</span>')


# -- a run -------------------------------------------------------------------------------

def _fold(inner: str, text: str, what: str) -> str:
    lines = text.count("\n") + 1
    if lines <= FOLD_LINES and len(text) <= FOLD_CHARS:
        return inner
    size = f"{len(text) / 1000:.1f} KB" if len(text) >= 1000 else f"{len(text)} characters"
    return (f'<details class="fold"><summary>{esc(what)}: {lines:,} lines, {size} — show</summary>'
            f"{inner}</details>")


def output_html(out: dict) -> str:
    kind, text = out.get("kind", "text"), out.get("text", "")
    if kind == "markdown":
        from .markdown import render

        inner = f'<div class="md">{render(text)}</div>'
    elif kind == "binary":
        inner = f'<p class="muted">{esc(text)}</p>'
    else:
        inner = f'<pre><code class="lang-{esc(kind)}">{esc(text)}</code></pre>'
    more = '<p class="muted">(cut: the rest is not shown)</p>' if out.get("truncated") else ""
    return (f'<section class="output" aria-label="output {esc(out["path"])}"><h4><code>{esc(out["path"])}'
            f'</code> <span class="muted">({esc(kind)})</span></h4>{_fold(inner, text, "output")}{more}</section>')


def _step_section(s: dict) -> str:
    sid = css_id(s["id"])
    facts = [("state", badge(s["state"])), ("kind", esc(s["kind"]) or "—")]
    if s.get("description"):
        facts.append(("what", esc(s["description"])))
    facts += [("reason", esc(s["reason"]) or "—"), ("time", fmt_time(s["duration"]))]
    if s.get("calls") or s.get("model"):
        facts += [("tokens in / out", fmt_tokens(s["tokens"])), ("model calls", str(s.get("calls") or 0)),
                  ("cost", fmt_cost(s["cost"], s.get("calls") or 0)), ("model", esc(s["model"]) or "—")]
    if s.get("needs"):
        facts.append(("needs", ", ".join(f'<a href="#step-{css_id(n)}">{esc(n)}</a>' for n in s["needs"])))
    if s.get("exit_code") is not None:
        facts.append(("exit code", esc(s["exit_code"])))
    parts = ['<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"]
    if s.get("error"):
        parts.append(f'<h3>Error</h3><pre class="error">{esc(s["error"])}</pre>')
    if s["outputs"]:
        parts.append("<h3>Output" + ("s" if len(s["outputs"]) > 1 else "") + "</h3>")
        parts += [output_html(o) for o in s["outputs"]]
    elif s["state"] in ("ran", "cached"):
        parts.append('<p class="muted">No output recorded.</p>')
    if s.get("log_tail"):
        tail = s["log_tail"]
        parts.append(f'<h3>Log (last lines)</h3>{_fold(f"<pre class=log>{esc(tail)}</pre>", tail, "log")}')
    opened = " open" if s["state"] == "failed" else ""
    return (f'<details class="step {STATE_CLASSES.get(s["state"], "state-pending")}" id="step-{sid}" '
            f'data-step="{esc(s["id"])}"{opened}><summary><span class="badge {STATE_CLASSES.get(s["state"], "")}">'
            f'{STATE_MARK.get(s["state"], "")} {esc(s["state"])}</span> <code>{esc(s["id"])}</code> '
            f'<span class="muted">{esc(s["kind"])}</span></summary><div>{"".join(parts)}</div></details>')


def _why(s: dict) -> str:
    """The reason column: a failed step's error (its first line), else why it ran or was cached."""
    if s["state"] in ("failed", "cancelled") and s.get("error"):
        first = s["error"].strip().splitlines()[0] if s["error"].strip() else ""
        return first if len(first) <= 200 else first[:199] + "…"
    return s["reason"]


def _table(steps: list) -> str:
    # on a narrow window the .wide columns hide: each step's section still has them
    head = "".join(f'<th scope="col"{cls}>{h}</th>' for h, cls in
                   (("Step", ""), ("State", ""), ("Kind", ' class="wide"'), ("Reason", ""), ("Time", ""),
                    ("Tokens in / out", ' class="wide"'), ("Cost", ' class="wide"'), ("Model", ' class="wide"')))
    rows = []
    for s in steps:
        rows.append(
            f'<tr class="{STATE_CLASSES.get(s["state"], "")}" data-step="{esc(s["id"])}">'
            f'<th scope="row"><a href="#step-{css_id(s["id"])}"><code>{esc(s["id"])}</code></a></th>'
            f'<td>{badge(s["state"])}</td><td class="wide">{esc(s["kind"])}</td><td>{esc(_why(s))}</td>'
            f'<td class="num">{fmt_time(s["duration"])}</td><td class="num wide">{fmt_tokens(s["tokens"])}</td>'
            f'<td class="num wide">{fmt_cost(s["cost"], s.get("calls") or 0)}</td>'
            f'<td class="wide">{esc(s["model"])}</td></tr>')
    return (f'<div class="table-wrap"><table><caption class="skip">Steps of the run</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def dag_of(steps: list) -> str:
    """The DAG of a view's steps (run_view or pipeline_view: each with id, kind, needs, state)."""
    nodes = [{"id": s["id"], "kind": s.get("kind", ""), "state": s.get("state", "pending"), "label": s["id"]}
             for s in steps]
    edges = [(n, s["id"]) for s in steps for n in s.get("needs", ())]
    return f'<div class="dag-box" tabindex="-1">{dag_svg(nodes, edges)}</div>'


def _commits(commits: list) -> str:
    if not commits:
        return ""
    from ..render import commit_words

    items = [f"<li>target <code>{esc(c.get('target', ''))}</code>: {esc(commit_words(c))}</li>"
             for c in commits if commit_words(c)]
    return f'<h2 id="commits">Commits</h2><ul>{"".join(items)}</ul>'


def run_body(view: dict) -> str:
    """A run as HTML (inside `page`): header with totals, the DAG, a table of steps, and a
    <details id="step-CSSID"> per step with its output and log tail."""
    t = view["totals"]
    status = view["status"]
    order = {s: i for i, s in enumerate(STATES)}
    counts = ", ".join(f"{n} {s}" for s, n in sorted(view.get("counts", {}).items(),
                                                      key=lambda kv: order.get(kv[0], 99)))
    cost = "—" if not t["calls"] else ("unknown" if t["cost"] is None else f"${t['cost']:.4f}")
    header = (
        f'<header><h1>Run <code>{esc(view["id"])}</code></h1>'
        f'<p class="sub">pipeline <b>{esc(view["pipeline"])}</b> ({esc(view["file"])}) · '
        f'started {esc(fmt_when(view["started"]))}</p>'
        '<ul class="totals" aria-label="run totals">'
        f'<li>status <b class="run-status" data-status="{esc(status)}">{esc(status)}</b></li>'
        f'<li>time <b>{fmt_time(view["duration"])}</b></li>'
        f'<li>steps <b>{len(view["steps"])}</b>{esc(counts)}</li>'
        f'<li>tokens in / out <b>{t["input_tokens"]:,} / {t["output_tokens"]:,}</b>'
        f'{t["calls"]} model call{"s" if t["calls"] != 1 else ""}</li>'
        f'<li>cost <b>{cost}</b></li></ul>'
        + (f'<p class="sub">command: <code>amelia {esc(" ".join(view["argv"]))}</code></p>' if view.get("argv") else "")
        + "</header>")
    steps = view["steps"]
    return (header
            + '<section aria-labelledby="h-graph"><h2 id="h-graph">Graph</h2>'
            + (dag_of(steps) if steps else '<p class="muted">This run has no steps.</p>') + "</section>"
            + '<section aria-labelledby="h-steps"><h2 id="h-steps">Steps</h2>'
            + (_table(steps) if steps else "") + "</section>"
            + _commits(view.get("commits") or [])
            + '<section aria-labelledby="h-details"><h2 id="h-details">Step details</h2>'
            + "".join(_step_section(s) for s in steps) + "</section>")


def run_page(view: dict) -> str:
    """The report: a run as a whole page."""
    from .. import __version__

    body = run_body(view) + (f'<footer>Written by amelia {esc(__version__)} on '
                             f'{esc(fmt_when(time.time()))}. Self-contained: it loads nothing.</footer>')
    return page(f"amelia run {view['id']} · {view['pipeline']}", body, script=RUN_SCRIPT)
