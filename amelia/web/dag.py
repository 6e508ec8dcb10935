"""The step graph as SVG: a layered left-to-right layout in pure Python (no graphviz).

Layers are longest paths from the sources (a step sits one column right of its latest
need); within a column, a few barycentre sweeps order the steps near their neighbours
(fewer crossings). Deterministic: the same nodes and edges give the same bytes. The
engine refuses cycles, but a cycle given here still ends: its first node (in the given
order) has its incoming edges from the cycle ignored for layering.

Every node is focusable and labelled, and shows its state as a word as well as a colour
(the colours are the page's CSS: class `state-STATE`, see html.STATE_CLASSES).
"""

from __future__ import annotations

from html import escape as _html_escape

NODE_W, NODE_H = 172, 46
GAP_X, GAP_Y = 56, 14
PAD = 12
MAX_LABEL = 22  # characters of a label shown; the full id is in the node's <title>
SWEEPS = 4

# A mark before the state's word: colour is never the only signal.
STATE_MARK = {"ran": "✓", "cached": "↺", "failed": "✗", "skipped": "⤼", "cancelled": "■",
              "running": "▶", "pending": "○", "blocked": "‖"}


def css_id(step_id: str) -> str:
    """A step id as a CSS/HTML id fragment: letters, digits and '-' kept, every other
    character written `_hex_` (so two ids never collide: '_' itself is `_5f_`)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c == "-" else f"_{ord(c):x}_" for c in step_id)


def _text(value) -> str:
    """Text from outside, for an element or attribute: controls shown, markup escaped."""
    from ..safetext import escape_line

    return _html_escape(escape_line(value), quote=True)


def short(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


def layers(ids: list, edges: list) -> dict:
    """id → column: the longest path from a source (edges among known ids, no self loops)."""
    index = {n: i for i, n in enumerate(ids)}
    preds: dict = {n: [] for n in ids}
    succs: dict = {n: [] for n in ids}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    indeg = {n: len(preds[n]) for n in ids}
    ready = [n for n in ids if indeg[n] == 0]
    order, done = [], set()
    while len(order) < len(ids):
        if not ready:  # a cycle: take its first node as if its needs were met
            ready = [min((n for n in ids if n not in done), key=index.__getitem__)]
        ready.sort(key=index.__getitem__)
        n = ready.pop(0)
        if n in done:
            continue
        done.add(n)
        order.append(n)
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0 and s not in done:
                ready.append(s)
    pos = {n: i for i, n in enumerate(order)}
    col: dict = {}
    for n in order:
        # needs placed before it only: an edge back along a cycle does not push it right
        col[n] = max((col[p] + 1 for p in preds[n] if pos[p] < pos[n]), default=0)
    return col


def _order(ids: list, edges: list, col: dict) -> list:
    """The columns, each a list of ids in top-to-bottom order (barycentre sweeps)."""
    ncols = max(col.values(), default=-1) + 1
    columns = [[n for n in ids if col[n] == c] for c in range(ncols)]
    preds: dict = {n: [] for n in ids}
    succs: dict = {n: [] for n in ids}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)

    def rank() -> dict:
        return {n: i / max(len(column), 1) for column in columns for i, n in enumerate(column)}

    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        neighbours = preds if down else succs
        for c in (range(1, ncols) if down else range(ncols - 2, -1, -1)):
            r = rank()
            column = columns[c]

            def key(n, i, r=r):
                near = [r[m] for m in neighbours[n]]
                return (sum(near) / len(near) if near else i / max(len(column), 1), i)

            columns[c] = [n for _, n in sorted((key(n, i), n) for i, n in enumerate(column))]
    return columns


def layout(nodes: list, edges: list) -> tuple:
    """({id: (x, y)}, width, height, [(from, to)] the edges drawn)."""
    ids, seen = [], set()
    for n in nodes:
        if n["id"] not in seen:
            seen.add(n["id"])
            ids.append(n["id"])
    kept, seen_edges = [], set()
    for a, b in edges:
        if a in seen and b in seen and a != b and (a, b) not in seen_edges:
            seen_edges.add((a, b))
            kept.append((a, b))
    col = layers(ids, kept)
    columns = _order(ids, kept, col)
    rows = max((len(c) for c in columns), default=0)
    xy = {}
    for c, column in enumerate(columns):
        offset = (rows - len(column)) * (NODE_H + GAP_Y) / 2  # each column centred
        for r, n in enumerate(column):
            xy[n] = (PAD + c * (NODE_W + GAP_X), PAD + offset + r * (NODE_H + GAP_Y))
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X
    height = PAD * 2 + rows * NODE_H + max(rows - 1, 0) * GAP_Y
    return xy, width, height, kept


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _edge(a: tuple, b: tuple) -> str:
    x1, y1 = a[0] + NODE_W, a[1] + NODE_H / 2
    x2, y2 = b[0] - 2, b[1] + NODE_H / 2
    if x2 > x1:
        mx = (x1 + x2) / 2
        d = f"M{_num(x1)} {_num(y1)} C{_num(mx)} {_num(y1)} {_num(mx)} {_num(y2)} {_num(x2)} {_num(y2)}"
    else:  # backwards (a cycle, or the same column): a loop below the nodes
        low = max(y1, y2) + NODE_H
        d = (f"M{_num(x1)} {_num(y1)} C{_num(x1 + 40)} {_num(low)} {_num(x2 - 40)} {_num(low)} "
             f"{_num(x2)} {_num(y2)}")
    return f'<path class="edge" d="{d}" marker-end="url(#amelia-arrow)"/>'


def dag_svg(nodes: list, edges: list, *, width=None) -> str:
    """nodes: [{"id", "kind", "state", "label"}]; edges: [(from_id, to_id)]. An <svg>
    element; `width` (px) scales it down to fit, else it has its natural size (its box scrolls)."""
    xy, w, h, kept = layout(nodes, edges)
    size = f'width="{_num(min(w, width))}"' if width else f'width="{w}" height="{h}"'
    out = [f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" {size} '
           f'role="group" aria-label="step graph: {len(xy)} step{"s" if len(xy) != 1 else ""}">',
           '<defs><marker id="amelia-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" class="arrow"/>'
           '</marker></defs>']
    out += [_edge(xy[a], xy[b]) for a, b in kept]
    drawn = set()
    for n in nodes:
        sid = n["id"]
        if sid in drawn:
            continue
        drawn.add(sid)
        x, y = xy[sid]
        state = n.get("state") or "pending"
        kind = n.get("kind") or ""
        label = n.get("label") or sid
        word = f"{STATE_MARK.get(state, '')} {state}".strip() + (f" · {kind}" if kind else "")
        out.append(
            f'<g class="node state-{_text(state)}" id="node-{css_id(sid)}" data-step="{_html_escape(sid)}" '
            f'tabindex="0" role="img" aria-label="{_text(sid)}: {_text(state)}">'
            f'<title>{_text(sid)}{f" ({_text(kind)})" if kind else ""}: {_text(state)}</title>'
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text class="label" x="{_num(x + 10)}" y="{_num(y + 19)}">{_text(short(label))}</text>'
            f'<text class="state" x="{_num(x + 10)}" y="{_num(y + 36)}">{_text(word)}</text></g>')
    out.append("</svg>")
    return "".join(out)
