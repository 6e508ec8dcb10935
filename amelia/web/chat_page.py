"""The chat page's HTML: the model and source pickers, the message form, a session's
earlier turns and the list of sessions. Reads only; every text goes through html.esc
(the users' words and the models' answers are text, never markup).
"""

from __future__ import annotations

from urllib.parse import quote

from .html import esc

CSS = """
.chat-cols{display:grid;gap:0 28px;grid-template-columns:minmax(0,1fr)}
@media (min-width:1000px){.chat-cols{grid-template-columns:minmax(0,2.2fr) minmax(0,1fr)}}
.chat-log{list-style:none;padding:0;margin:0}
.chat-log>li{border-bottom:1px solid var(--line);padding:.4em 0 .8em}
.msg .who{font-size:.9rem;color:var(--muted);margin:.6em 0 .2em;border:0}
.msg .text{white-space:pre-wrap;overflow-wrap:anywhere}
.msg.user .text{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:6px 10px}
.msg .usage,.msg .note{color:var(--muted);font-size:13px;margin:.3em 0}
.msg .problem{color:var(--failed);font-weight:600;white-space:pre-wrap}
.msg.stopped .text{opacity:.7}
ul.citations{margin:.4em 0;padding-left:1.2em;font-size:14px}
.chat-form{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 14px 12px;margin:1em 0}
.chat-form label{font-weight:600}
.chat-pick{display:flex;flex-wrap:wrap;gap:.5rem 1.2rem;align-items:center;margin:.3em 0 .6em}
.chat-form select,.chat-form textarea{font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);
border-radius:6px;padding:.25rem .4rem}
.chat-form textarea{display:block;width:100%;min-height:4.5em;resize:vertical;margin:.3em 0}
.chat-form button#chat-send:not(:disabled){background:var(--ran);border-color:var(--ran);color:#fff}
#chat-problem{color:var(--failed);font-weight:600;white-space:pre-wrap}
#chat-status{color:var(--muted)}
.sessions{list-style:none;padding:0}.sessions li{margin:.5em 0}
.sessions .muted{display:block;font-size:13px}
"""


def models_select(models: dict, chosen: str, problems: dict) -> str:
    """The pipeline's models (as `amelia chat --model`); each option carries the problem
    that keeps it from answering here (a missing key), shown when it is picked."""
    opts = []
    for name, config in models.items():
        what = f"{config.provider} {config.model}".strip() if config.model else config.provider
        problem = problems.get(name, "")
        opts.append(f'<option value="{esc(name)}" data-problem="{esc(problem)}"'
                    f'{" selected" if name == chosen else ""}>{esc(name)} ({esc(what)})</option>')
    return (f'<label for="chat-model">Model</label><select id="chat-model" name="model">'
            f'{"".join(opts)}</select>')


def sources_select(sources: list, chosen: str) -> str:
    """sources: (name, indexed, documents). "none" first: a chat grounded in nothing."""
    opts = ['<option value="">none (not grounded)</option>']
    for name, indexed, docs in sources:
        state = "indexed" if indexed else "not indexed"
        opts.append(f'<option value="{esc(name)}"{" selected" if name == chosen else ""}>'
                    f'{esc(name)} — {state}{" · " + esc(", ".join(docs)) if docs else ""}</option>')
    disabled = "" if sources else " disabled"
    note = "" if sources else ' <span class="muted">(the pipeline declares no sources)</span>'
    return (f'<label for="chat-source">Source</label><select id="chat-source" name="source"{disabled}>'
            f'{"".join(opts)}</select>{note}')


def turn_html(question: str, answer: str, who: str, usage: str) -> str:
    """One earlier turn (the same markup the page's script builds for a new one)."""
    return (f'<li class="turn"><div class="msg user"><h3 class="who">You</h3>'
            f'<div class="text">{esc(question)}</div></div>'
            f'<div class="msg assistant"><h3 class="who">{esc(who)}</h3><div class="text">{esc(answer)}</div>'
            f'<p class="usage">{esc(usage)}</p></div></li>')


def sessions_list(rows: list, current: str) -> str:
    """The project's sessions, most recently used first (as `amelia chat --list`)."""
    from .dashboard import when

    if not rows:
        return '<p class="muted">No chat sessions yet.</p>'
    items = []
    for r in rows:
        here = ' aria-current="page"' if r["id"] == current else ""
        turns = f'{r["turns"]} turn{"s" if r["turns"] != 1 else ""}'
        facts = " · ".join(x for x in (r["id"], r["model"], r["source"] or "", turns, when(r["updated"])[:16]) if x)
        items.append(f'<li><a href="/chat?session={quote(r["id"])}"{here}>{esc(r["title"] or "(untitled)")}</a>'
                     f'<span class="muted">{esc(facts)}</span></li>')
    return f'<ul class="sessions">{"".join(items)}</ul>'


def body(*, root: str, pipeline: str, others: list, models: dict, model: str, problems: dict,
         sources: list, source: str, session: str, turns: list, resumed_note: str, error: str,
         sessions: str) -> str:
    """The page's <main>. turns: [(question, answer, who, usage)] of the resumed session."""
    import os

    head = (f'<header><nav aria-label="Back"><a href="/">← the project</a></nav>'
            f'<h1>Chat · <code>{esc(os.path.basename(root) or root)}</code></h1>'
            f'<p class="sub">The models of {esc(pipeline or "this project (no pipeline file: the built-in models)")}, '
            f'as <code>amelia chat</code>: sessions are shared with the terminal.</p>')
    if others:
        head += ('<nav aria-label="Other pipelines">Models of another pipeline: '
                 + " · ".join(f'<a href="/chat?pipeline={quote(n)}">{esc(n)}</a>' for n in others) + "</nav>")
    head += "</header>"
    if error:
        return head + f'<p role="alert">{esc(error)}</p>'
    where = (f'Session <code>{esc(session)}</code>{" · " + esc(resumed_note) if resumed_note else ""}'
             if session else "A new session: it is saved once its first answer is complete.")
    problem = problems.get(model, "")
    form = (f'<form id="chat-form" class="chat-form" method="post" action="/api/chat" '
            f'data-session="{esc(session)}" data-pipeline="{esc(pipeline)}">'
            f'<div class="chat-pick">{models_select(models, model, problems)}{sources_select(sources, source)}</div>'
            f'<p id="chat-problem" role="alert"{"" if problem else " hidden"}>{esc(problem)}</p>'
            f'<label for="chat-message">Message</label>'
            f'<textarea id="chat-message" name="message" rows="3" required aria-describedby="chat-keys">'
            f'</textarea><p id="chat-keys" class="muted">Enter or Ctrl+Enter sends · Shift+Enter starts a new '
            f'line · Stop ends the answer (it is not kept)</p>'
            f'<div class="controls"><button type="submit" id="chat-send">Send</button>'
            f'<button type="button" id="chat-stop" disabled>Stop</button>'
            f'<span id="chat-status" role="status" aria-live="polite"></span></div></form>')
    log = "".join(turn_html(*t) for t in turns)
    return (head + '<div class="chat-cols"><section aria-labelledby="conv-h">'
            f'<h2 id="conv-h">Conversation</h2><p class="sub" id="chat-where">{where}</p>'
            f'<ol id="chat-log" class="chat-log" aria-label="Conversation">{log}</ol>{form}</section>'
            '<aside aria-labelledby="sessions-h"><h2 id="sessions-h">Sessions</h2>'
            '<p><a href="/chat">New chat</a></p>'
            f'<div id="chat-sessions">{sessions}</div></aside></div>')
