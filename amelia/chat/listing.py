"""`amelia chat --list`: the project's chat sessions, most recently used first."""

from __future__ import annotations

import json
import time

TITLE_WIDTH = 50


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _cost(row) -> str:
    if row["cost"] is None:
        return "?"
    if row["cost"] == 0:  # the local model's answers
        return "free"
    return f"${row['cost']:.4f}"


def sessions_text(rows) -> str:
    """rows: store.chats.sessions(). Titles are the users' words: escaped, cut."""
    from ..safetext import escape_line

    if not rows:
        return "no chat sessions yet (start one with `amelia chat`)\n"
    model_w = max(5, *(len(r["model"]) for r in rows))
    source_w = max(6, *(len(r["source"] or "-") for r in rows))
    lines = [f"{'SESSION':<8} {'LAST USED':<16} {'MODEL':<{model_w}} {'SOURCE':<{source_w}} "
             f"{'TURNS':>5} {'TOKENS IN/OUT':>14} {'COST':>9}  TITLE"]
    for r in rows:
        title = escape_line(r["title"] or "")
        if len(title) > TITLE_WIDTH:
            title = title[:TITLE_WIDTH - 1] + "…"
        tokens = f"{r['input_tokens']}/{r['output_tokens']}"
        lines.append(f"{r['id']:<8} {_when(r['updated']):<16} {escape_line(r['model']):<{model_w}} "
                     f"{escape_line(r['source'] or '-'):<{source_w}} {r['turns']:>5} {tokens:>14} "
                     f"{_cost(r):>9}  {title}")
    return "\n".join(lines) + "\n"


def sessions_json(rows) -> str:
    return json.dumps(rows, indent=2) + "\n"
