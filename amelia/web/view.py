"""A run (or a pipeline) read into plain, JSON-ready dicts: what `report` and `ui` show.

Pure reading, no HTML. Every text from outside (outputs, logs, errors, reasons) comes out
redacted and with its control characters shown (amelia.safetext); the HTML layer escapes
markup. Outputs are read from the store's objects by the step's record key, never from
the working tree: an old run shows what it made, not what the file holds now.
"""

from __future__ import annotations

import json
import os

TEXT_CAP = 200_000  # characters of an output kept; beyond, `truncated`
TAIL_LINES = 60
TAIL_BYTES = 64_000  # the end of a log read for its tail
FRAGMENT_SCAN = 64_000  # above this, only whole secrets are redacted (the fragment scan is slow)
STATES = ("ran", "cached", "failed", "skipped", "cancelled", "running", "pending", "blocked")
MARKDOWN = (".md", ".markdown", ".mdx")
JSON = (".json", ".jsonl", ".ndjson", ".geojson")


def _safe(text, newlines: bool = True) -> str:
    from ..safetext import safe

    text = str(text)
    return safe(text, newlines=newlines, fragments=len(text) <= FRAGMENT_SCAN)


# -- a pipeline ------------------------------------------------------------------------

def _model_of(step) -> str:
    model = getattr(getattr(step, "config", None), "model", None)
    if model is None or not getattr(model, "provider", None):
        return ""
    return f"{model.provider}/{model.model}" if model.model else model.provider


def pipeline_view(pipeline) -> dict:
    """{name, file, steps: [{id, kind, needs, description, target}]} in the file's order."""
    return {"name": pipeline.name, "file": pipeline.file,
            "steps": [{"id": s.id, "kind": s.kind, "needs": list(s.needs),
                       "description": s.description, "target": s.target} for s in pipeline.steps]}


# -- outputs -----------------------------------------------------------------------------

def _kind_of(path: str, data: bytes) -> str:
    if b"\0" in data[:8192]:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # a cut at the cap may split a character: only the last 3 bytes may be partial
        try:
            data[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return "binary"
    low = path.lower()
    if low.endswith(MARKDOWN):
        return "markdown"
    if low.endswith(JSON):
        return "json"
    return "text"


def _read_object(store, digest: str, cap: int) -> tuple:
    """(the first `cap` bytes of an object, whether there is more); OSError if missing."""
    from ..store.objects import object_name

    with open(store.objects.path(object_name(digest)), "rb") as f:
        data = f.read(cap + 1)
    return data[:cap], len(data) > cap


def output_view(store, path: str, digest: str, cap: int = TEXT_CAP) -> dict:
    """One output as stored: {path, kind, text, truncated} (text redacted, controls shown)."""
    from ..store.objects import TREE_PREFIX

    out = {"path": _safe(path, newlines=False), "kind": "text", "text": "", "truncated": False}
    try:
        if digest.startswith(TREE_PREFIX):
            files = sorted(store.objects.read_tree(digest))
            listed = "\n".join(files[:2000])
            out.update(kind="directory", truncated=len(files) > 2000,
                       text=_safe(f"{len(files)} file{'s' if len(files) != 1 else ''}\n{listed}"))
            return out
        data, more = _read_object(store, digest, cap)
        size = os.path.getsize(store.objects.path(_name(digest)))
    except (OSError, ValueError):
        out["text"] = "(no longer in the store: `cache gc` or `cache clear` removed it)"
        out["missing"] = True
        return out
    kind = _kind_of(path, data)
    if kind == "binary":
        out.update(kind="binary", text=f"binary, {size:,} bytes")
        return out
    text = data.decode("utf-8", "replace")
    if kind == "json" and not more:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            kind = "text"  # not JSON after all: shown as it is
    out.update(kind=kind, text=_safe(text), truncated=more)
    return out


def _name(digest: str) -> str:
    from ..store.objects import object_name

    return object_name(digest)


# -- logs --------------------------------------------------------------------------------

def log_tail(store, run_id: str, step: str, lines: int = TAIL_LINES) -> str:
    """The last lines the step printed in that run (its log in .amelia/logs/RUN/), made safe."""
    from ..store import STORE_DIR, Store

    path = os.path.join(store.root, STORE_DIR, "logs", run_id, Store.log_name(step))
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - TAIL_BYTES, 0))
            data = f.read()
    except OSError:
        return ""
    kept = data.decode("utf-8", "replace").splitlines()[-lines:]
    if size > TAIL_BYTES and len(kept) == lines + 1:
        kept = kept[1:]
    return _safe("\n".join(kept))


# -- a run -------------------------------------------------------------------------------

def _events(store, run_id: str) -> list:
    out = []
    for e in store.history.events(run_id):
        try:
            d = json.loads(e.data)
        except (TypeError, ValueError):
            continue
        if isinstance(d, dict):
            d.setdefault("type", e.type)
            out.append(d)
    return out


def _state(row_status: str, run_status: str) -> str:
    if row_status == "running" and run_status != "running":
        return "cancelled"  # the run ended (interrupted, died) with the step under way
    return row_status if row_status in STATES else "pending"


def _num(value):
    return value if isinstance(value, (int, float)) else None


def run_view(store, pipeline, run_id: str) -> dict:
    """The run as JSON-ready data (see /docs/report.md for what each field means).

    pipeline: the project's pipeline, or None; used for the steps' kinds, needs and models,
    and for the steps the run did not touch ("pending"), only when it is the pipeline the
    run ran (same name)."""
    run = store.history.run(run_id)
    if run is None:
        raise KeyError(run_id)
    if pipeline is not None and pipeline.name != run["pipeline"]:
        pipeline = None
    usage = store.history.usage_by_step(run_id)
    events = _events(store, run_id)
    models: dict = {}
    tails: dict = {}
    for e in events:
        if e["type"] == "model_called" and e.get("step"):
            m = f"{e.get('provider') or ''}/{e.get('model') or ''}".strip("/")
            models.setdefault(e["step"], [])
            if m and m not in models[e["step"]]:
                models[e["step"]].append(m)
        elif e["type"] == "step_failed" and e.get("tail"):
            tails[e["step"]] = e["tail"]
    by_id = pipeline.by_id() if pipeline is not None else {}
    rows = {s["step"]: s for s in run["steps"]}
    order = [s.id for s in pipeline.steps] if pipeline is not None else []
    order += [sid for sid in rows if sid not in by_id]
    steps = []
    for sid in order:
        row = rows.get(sid)
        spec = by_id.get(sid)
        record = store.records.get(row["key"]) if row and row.get("key") else None
        state = _state(row["status"], run["status"]) if row else "pending"
        u = usage.get(sid) or {}
        kind = spec.kind if spec is not None else (record.detail.get("kind", "") if record else "")
        if spec is not None:
            needs = list(spec.needs)
        elif record is not None:
            needs = sorted((record.detail.get("upstream") or {}).keys())
        else:
            needs = []
        model = ", ".join(models.get(sid, ())) or (_model_of(spec) if spec is not None else "")
        outputs = [output_view(store, p, d) for p, d in sorted(record.outputs.items())] if record else []
        tail = log_tail(store, run_id, sid) if row else ""
        if not tail and sid in tails:
            tail = _safe(tails[sid])
        reason = (row.get("reason") or "") if row else ""
        if state == "cached" and not reason:
            reason = "inputs unchanged"
        steps.append({
            "id": sid, "kind": kind, "state": state, "reason": _safe(reason, newlines=False),
            # a cached step took no time of its own (its row says 0.0)
            "duration": _num(row.get("duration")) if row and (row.get("duration") or state != "cached") else None,
            "tokens": {"input": u.get("input_tokens") or 0, "output": u.get("output_tokens") or 0},
            "calls": u.get("calls") or 0,
            "cost": _num(u.get("cost")) if u else None,
            "model": model, "needs": needs, "outputs": outputs, "log_tail": tail,
            "error": _safe(row["error"]) if row and row.get("error") else "",
            "exit_code": row.get("exit_code") if row else None,
            "description": _safe(spec.description) if spec is not None and spec.description else "",
        })
    known = {s["id"] for s in steps}
    for s in steps:  # a need the run has no step for (a renamed step) is not drawn
        s["needs"] = [n for n in s["needs"] if n in known]
    costs = [u.get("cost") for u in usage.values()]
    totals = {
        "input_tokens": sum(u.get("input_tokens") or 0 for u in usage.values()),
        "output_tokens": sum(u.get("output_tokens") or 0 for u in usage.values()),
        "cost": None if not usage or any(c is None for c in costs) else sum(costs),
        "calls": sum(u.get("calls") or 0 for u in usage.values()),
    }
    counts: dict = {}
    for s in steps:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    finished = run.get("finished")
    return {
        "id": run["id"], "pipeline": _safe(run["pipeline"], newlines=False),
        "file": _safe(run["file"], newlines=False), "status": run["status"],
        "started": run["started"], "finished": finished,
        "duration": (finished - run["started"]) if finished and run.get("started") else None,
        "argv": [_safe(a, newlines=False) for a in run.get("argv") or []],
        "totals": totals, "counts": counts, "steps": steps,
        "commits": [e for e in events if e["type"] == "target_committed"],
    }
