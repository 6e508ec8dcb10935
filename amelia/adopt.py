"""`amelia run --adopt`: take the outputs already on disk as the result of the current
inputs, without running anything, so a project moving from Make or DVC does not rebuild
everything once.

Each selected step, in order, is decided as a run would decide it (its upstream's
adopted outputs feed its key); a step that would run has its outputs stored and a record
saved under that key instead. Every output must exist. A step with a depfile adopts the
dependencies its depfile on disk names, if it has one.
"""

from __future__ import annotations

import os
import time


def adopt(pipeline, store, opts, out, make_plan) -> dict:
    from . import planner
    from .errors import StepsFailed
    from .fingerprint import discovered_paths, fingerprint
    from .planner import CACHED, ERROR
    from .render import summary_line
    from .runner import with_discovered
    from .steps import StepError
    from .steps.run import read_depfile
    from .store import Record, StepRow
    from .store.objects import with_mode

    started = time.time()
    plan, states, previous = make_plan(pipeline, store, opts.force, opts.force_all, opts.only)
    run_id = _run_id()
    store.history.start_run(run_id, pipeline.name, pipeline.file, list(opts.argv))
    by_id = pipeline.by_id()
    known: dict = {}
    rows, failed, unknown = [], [], set()  # unknown: left to run, nothing on disk to go on
    counts = {"ran": 0, "cached": 0, "failed": 0, "skipped": 0}
    width = max((len(d.step) for d in plan.decisions), default=0)
    for d0 in plan.decisions:
        step = by_id[d0.step]
        if any(n in failed for n in step.needs):
            failed.append(step.id)
            counts["skipped"] += 1
            out.write(f"skip    {step.id:<{width}}  an upstream step could not be adopted\n")
            continue
        if any(n in unknown for n in step.data_needs):
            unknown.add(step.id)
            counts["skipped"] += 1
            out.write(f"skip    {step.id:<{width}}  an upstream step has no outputs to go on; it runs next time\n")
            continue
        left = _left_to_run(pipeline.root, step)
        if left:  # not adopted; its outputs on disk, if any, still stand for its dependents
            on_disk = {o: states.output_hash(o.rstrip("/")) for o in step.outputs}
            if all(on_disk.values()):
                known[step.id] = on_disk
            else:
                unknown.add(step.id)
            counts["skipped"] += 1
            out.write(f"skip    {step.id:<{width}}  {left}\n")
            continue
        fp = fingerprint(step, states, pipeline, discovered_paths(step, previous))
        upstream = {n: known[n] for n in step.data_needs}
        d = planner.decide(pipeline, step, fp, upstream, store.records.heads([step.id]),
                           step.id in opts.force or opts.force_all, previous)
        # Cached, or cached with outputs missing (the store has them; a run restores them).
        # An output edited by hand is adopted as it is on disk.
        if d.action == CACHED and all(r.kind != "output_edited" for r in d.reasons):
            known[step.id] = d.outputs
            counts["cached"] += 1
            rows.append(StepRow(run_id, step.id, "cached", "", d.key, started, 0.0))
            continue
        if d.action == ERROR:
            problem = "; ".join(str(r) for r in d.reasons)
        else:
            problem = _missing_outputs(pipeline.root, step)
        if problem:
            failed.append(step.id)
            counts["failed"] += 1
            out.write(f"failed  {step.id:<{width}}  cannot adopt: {problem}\n")
            continue
        outputs = {}
        for o in step.outputs:
            full = os.path.join(pipeline.root, o.rstrip("/"))
            outputs[o] = (store.objects.put_tree(full) if o.endswith("/") else
                          with_mode(store.objects.put_file(full), os.stat(full).st_mode))
        key, material = d.key, d.material
        if step.depfile and os.path.exists(os.path.join(pipeline.root, step.depfile)):
            try:
                key, material = with_discovered(states, material, read_depfile(step, pipeline.root))
            except StepError as e:
                out.write(f"note    {step.id:<{width}}  depfile not adopted: {e.message}\n")
        store.records.save(Record(key, step.id, outputs, material, run_id, 0.0))
        known[step.id] = outputs
        counts["ran"] += 1
        rows.append(StepRow(run_id, step.id, "adopted", "", key, started, 0.0))
        out.write(f"adopt   {step.id:<{width}}  {', '.join(step.outputs)}\n")
    store.memo.save(states.updates)
    status = "failed" if failed else "ok"
    store.history.finish_run(run_id, status, {"counts": counts, "duration": time.time() - started}, rows)
    line = summary_line(status, counts, time.time() - started, run_id)
    out.write(line.replace(f"{counts['ran']} ran", f"{counts['ran']} adopted", 1) + "\n")
    out.flush()
    if failed:
        n = counts["failed"]
        raise StepsFailed(f"{n} step{'s' if n != 1 else ''} could not be adopted",
                          hint="run them (`amelia run`), or create their outputs first")
    return {"status": status, "counts": counts, "run_id": run_id}


def _left_to_run(root: str, step) -> str:
    """Why a step is not adopted but left to its next run, or ''."""
    if step.always:
        return "always runs; not adopted"
    if step.depfile and not os.path.exists(os.path.join(root, step.depfile)):
        return (f"its depfile {step.depfile} is not on disk: it runs next time, to learn "
                "which files it depends on")
    return ""


def _missing_outputs(root: str, step) -> str:
    """Why the step's outputs cannot be adopted as they are on disk, or ''."""
    from .confine import Escape, check_dir, check_output
    from .targets import fence

    for o in step.outputs:
        full = os.path.join(root, o.rstrip("/"))
        try:
            fenced, rel = fence(root, o)  # a target's output stays in its worktree
            check_output(fenced, rel)
            if os.path.islink(full):
                check_dir(fenced, full)
        except Escape as e:
            return str(e)
    missing = [o for o in step.outputs
               if not (os.path.isdir if o.endswith("/") else os.path.isfile)(os.path.join(root, o.rstrip("/")))]
    return f"output{'s' if len(missing) != 1 else ''} {', '.join(missing)} not on disk" if missing else ""


def _run_id() -> str:
    from .api import new_run_id

    return new_run_id()
