"""Text and JSON renderings of plans and run history (no heavy imports).

Names, file names and errors come from outside (the pipeline file, the disk, servers,
state.db written by older versions): the text renderings show them through
`safetext` (secrets redacted, escape sequences shown); JSON escapes controls itself.
"""

from __future__ import annotations

import json
import time


def escape_line(text) -> str:
    from .safetext import escape_line as e  # plans and history only: not on the no-op path

    return e(text)


def safe(text, **kwargs) -> str:
    from .safetext import safe as s

    return s(text, **kwargs)


def _word(reasons) -> str:
    from .reasons import word  # only plans say reasons; the no-op's summary line does not

    return word(reasons)


def plan_text(pipeline, decisions, orphans=()) -> str:
    if not decisions:
        return "nothing selected\n"
    width = max(len(d.step) for d in decisions)
    lines = []
    counts: dict = {}
    for d in decisions:
        action = "restore" if d.action == "cached" and d.restore else d.action
        counts[action] = counts.get(action, 0) + 1
        why = _word(d.reasons)
        lines.append(f"{action:<7} {d.step:<{width}}  {why}".rstrip())
    order = ("run", "blocked", "restore", "cached", "error")
    summary = ", ".join(f"{counts[a]} {a}" for a in order if counts.get(a))
    stale = counts.get("run", 0) + counts.get("blocked", 0)
    verdict = ", ".join(([f"{stale} to run"] if stale else []) +
                        ([f"{counts['restore']} to restore"] if counts.get("restore") else []) +
                        ([f"{counts['error']} cannot run"] if counts.get("error") else []) +
                        ([f"{len(orphans)} to remove"] if orphans else [])) or "up to date"
    lines.append(f"amelia: plan for {escape_line(pipeline.name)}: {verdict} ({summary})")
    return "\n".join(lines) + "\n"


def plan_json(pipeline, decisions, orphans=()) -> str:
    doc = {
        "pipeline": pipeline.name,
        "file": pipeline.file,
        "steps": [{"step": d.step, "action": d.action, "reasons": [r.to_dict() for r in d.reasons],
                   "key": d.key or None, "restore": list(d.restore)} for d in decisions],
        "remove": list(orphans),  # outputs no step writes any more, that a run removes
    }
    return json.dumps(doc, indent=2) + "\n"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def summary_line(status: str, counts: dict, duration: float, run_id: str) -> str:
    parts = [f"{counts.get('ran', 0)} ran", f"{counts.get('cached', 0)} cached"]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped")
    if counts.get("cancelled"):
        parts.append(f"{counts['cancelled']} stopped")
    verdict = {"ok": "done", "failed": "FAILED", "interrupted": "interrupted",
               "cancelled": "cancelled"}[status]
    return f"amelia: {verdict}: {', '.join(parts)} in {fmt_seconds(duration)} (run {run_id})"


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _dur(run) -> str:
    if run.get("finished") and run.get("started"):
        return f"{run['finished'] - run['started']:.2f}s"
    return "-"


def _tokens(u) -> str:
    if not u or not (u.get("input_tokens") or u.get("output_tokens")):
        return "-"
    return f"{u['input_tokens'] or 0}/{u['output_tokens'] or 0}"


def _cost(u) -> str:
    if not u or (u.get("input_tokens") is None and u.get("cost") is None):
        return "-"
    return "?" if u.get("cost") is None else f"${u['cost']:.4f}"


def runs_text(runs) -> str:
    """runs: dicts from store.history.runs, each with a "usage" total (or None)."""
    if not runs:
        return "no runs yet\n"
    lines = [f"{'RUN':<22} {'STARTED':<19} {'STATUS':<11} {'TIME':>8} {'TOKENS IN/OUT':>14} "
             f"{'COST':>9}  STEPS"]
    for r in runs:
        c = r["summary"].get("counts", {})
        steps = ", ".join(f"{v} {k}" for k, v in c.items() if v)
        u = r.get("usage")
        lines.append(f"{r['id']:<22} {_when(r['started']):<19} {r['status']:<11} {_dur(r):>8} "
                     f"{_tokens(u):>14} {_cost(u):>9}  {steps}")
    return "\n".join(lines) + "\n"


def show_text(run) -> str:
    """run: store.history.run with "usage" (step → totals) attached."""
    usage = run.get("usage") or {}
    total_in = sum(u["input_tokens"] or 0 for u in usage.values())
    total_out = sum(u["output_tokens"] or 0 for u in usage.values())
    costs = [u["cost"] for u in usage.values()]
    lines = [
        f"run       {run['id']}",
        f"pipeline  {escape_line(run['pipeline'])} ({escape_line(run['file'])})",
        f"started   {_when(run['started'])}",
        f"status    {run['status']}",
        f"time      {_dur(run)}",
    ]
    if usage:
        cached = sum(u["cached_tokens"] or 0 for u in usage.values())
        calls = sum(u["calls"] for u in usage.values())
        cost = "?" if any(c is None for c in costs) else f"${sum(costs):.4f}"
        lines.append(f"tokens    {total_in} in, {total_out} out, {cached} cached in {calls} calls")
        lines.append(f"cost      {cost}")
    lines.append("")
    steps = run["steps"]
    if steps:
        width = max(len(s["step"]) for s in steps)
        for s in steps:
            dur = f"{s['duration']:.2f}s" if s.get("duration") else ""
            u = usage.get(s["step"])
            money = f"{_tokens(u):>11} {_cost(u):>9}  " if usage else ""
            detail = safe(s.get("error") or s.get("reason") or "")
            lines.append(f"{s['status']:<8} {escape_line(s['step']):<{width}}  {dur:>7}  "
                         f"{money}{detail}".rstrip())
            changes = s.get("changes")
            if changes:
                lines += _changes_lines(changes)
    for c in run.get("commits") or ():
        text = commit_words(c)
        if text:
            lines.append(f"commit   target:{escape_line(c['target'])}  {safe(text)}")
    return "\n".join(lines) + "\n"


def commit_words(c: dict) -> str | None:
    """A target's commit in a run (a target_committed event as a dict) for people:
    `3f2a1c9e04 on amelia/docs (1 file, pushed)`; None when nothing changed."""
    if c.get("error"):
        return f"commit failed: {c['error']}"
    if not c.get("commit"):
        return f"pushed {c.get('branch', '')} (nothing new to commit)" if c.get("pushed") else None
    n = len(c.get("files") or ())
    return (f"{str(c['commit'])[:10]} on {c.get('branch', '')} ({n} file{'s' if n != 1 else ''}"
            f"{', pushed' if c.get('pushed') else ''})")


def _changes_lines(changes: dict, limit: int = 10) -> list:
    """A coding step's changed files, under its line in `show`."""
    items = [f"{escape_line(p)}" for p in changes.get("changed") or ()]
    items += [f"{escape_line(p)} (deleted)" for p in changes.get("deleted") or ()]
    where = f" on target {escape_line(changes['target'])}" if changes.get("target") else \
        " (not in your tree: `amelia apply RUN STEP`)"
    out = [f"         changed {len(items)} file{'s' if len(items) != 1 else ''}{where}"]
    out += [f"           {p}" for p in items[:limit]]
    if len(items) > limit:
        out.append(f"           and {len(items) - limit} more")
    return out


def to_json(value) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"
