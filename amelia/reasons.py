"""Why a step runs, stays cached, waits or fails: reasons as data, worded in one place.

A Reason is a kind and a subject (`input_changed src/a.txt`, `param_changed goal`);
the planner and the scheduler make them, reporters word them, `plan --json` returns
them as they are. `explain` compares a step's new key material with the material of
its last good result and says what differs, naming the file, param or field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .targets import shown

# kind → wording; {s} is the subject.
WORDING = {
    "new_step": "new step",
    "forced": "forced",
    "always": "always runs",
    "format_changed": "cache format changed",
    "kind_changed": "step kind changed",
    "definition_changed": "definition changed ({s})",
    "param_changed": "param {s} changed",
    "prompt_changed": "prompt {s} changed",
    "model_changed": "model settings changed",
    "input_changed": "input {s} changed",
    "input_added": "input {s} added",
    "input_removed": "input {s} removed",
    "upstream_changed": "upstream {s} changed",
    "env_changed": "env vars changed",
    "no_record": "no cached result for these inputs",
    "output_missing": "restore {s}",
    "output_edited": "restore {s} (edited)",
    "object_corrupt": "the stored copy of {s} was corrupt (moved to .amelia/objects/corrupt/)",
    "output_lost": "output {s} is missing and not in the store",
    "output_gone": "output {s} is missing",  # a kind that never restores: it runs again
    "output_changed": "output {s} was edited",
    "upstream_unchanged": "upstream re-ran; its outputs are unchanged",
    "after": "after {s}",
    "missing_input": "input '{s}' does not exist and no step writes it",
    "input_error": "{s}",
    "upstream_failed": "upstream {s} failed",
    "upstream_skipped": "upstream {s} did not run",
    "upstream_cancelled": "upstream {s} was cancelled",
}
# Kinds that list files or steps: beyond this many of one kind, reporters say "N more".
LISTED = ("input_changed", "input_added", "input_removed", "upstream_changed")
LIST_LIMIT = 3


@dataclass(frozen=True)
class Reason:
    kind: str  # a key of WORDING
    subject: str = ""  # the file, param, step or field it is about

    def __str__(self) -> str:
        text = WORDING[self.kind]
        if not self.subject:
            text = text.replace(" ({s})", "").replace(" {s}", "")
        return text.format(s=shown(self.subject))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "text": str(self)}


def word(reasons, limit: int = LIST_LIMIT) -> str:
    """Reasons as one line for people: '; '-joined, long file lists cut to `limit`."""
    out, seen = [], {}
    for r in reasons:
        if r.kind in LISTED:
            seen[r.kind] = seen.get(r.kind, 0) + 1
            if seen[r.kind] > limit:
                continue
        out.append(str(r))
    for kind, n in seen.items():
        if n > limit:
            noun, label = kind.split("_", 1)
            out.append(f"{n - limit} more {noun}s {label}")
    return "; ".join(out)


def explain(step, material: dict, previous: dict | None, produced=frozenset(),
            upstream_known: bool = True) -> tuple:
    """What differs between the new key material and the step's last good one.

    produced: the input paths that upstream steps write (their changes are said as
    `upstream_changed`, not as input changes).
    upstream_known: False in a dry pass whose upstream will run first; only the step's
    own changes (definition, params, its own input files, env) are said then.
    """
    if previous is None:
        return (Reason("new_step"),)
    if previous.get("v") != material["v"]:
        return (Reason("format_changed"),)
    reasons = []
    if previous.get("kind") != material["kind"]:
        reasons.append(Reason("kind_changed"))
    elif previous.get("definition") != material["definition"]:
        reasons += _definition_changes(step, previous["definition"], material["definition"])
    old, new = previous.get("inputs", {}), material["inputs"]

    def own(p):
        return p not in produced and not any(p.startswith(o) for o in produced if o.endswith("/"))

    reasons += [Reason("input_changed", p) for p in new if p in old and old[p] != new[p] and own(p)]
    reasons += [Reason("input_added", p) for p in new if p not in old and own(p)]
    reasons += [Reason("input_removed", p) for p in old if p not in new and own(p)]
    old_found, new_found = previous.get("discovered") or {}, material.get("discovered") or {}
    reasons += [Reason("input_changed", p) for p in new_found
                if p in old_found and old_found[p] != new_found[p] and p not in new]
    if upstream_known:
        reasons += [Reason("upstream_changed", d) for d, outs in material["upstream"].items()
                    if previous.get("upstream", {}).get(d) != outs]
    if previous.get("env_names") != material["env_names"]:
        reasons.append(Reason("env_changed"))
    if not reasons and upstream_known:
        reasons.append(Reason("no_record"))
    return tuple(reasons)


def _definition_changes(step, old_text: str, new_text: str) -> list:
    """Name what changed in a definition: a param, the prompt, the model, or the fields."""
    try:
        old, new = json.loads(old_text), json.loads(new_text)
    except (TypeError, ValueError):
        return [Reason("definition_changed", "")]
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [Reason("definition_changed", "")]
    out = []
    params = {v.env: v.ref.split(".", 1)[1] for v in getattr(step, "vars", ()) if v.ref.startswith("params.")}
    old_vars, new_vars = old.get("static_vars") or {}, new.get("static_vars") or {}
    for env in sorted(set(old_vars) | set(new_vars)):
        if old_vars.get(env) != new_vars.get(env):
            out.append(Reason("param_changed", params.get(env, env)))
    fields = []
    for k in sorted(set(old) | set(new)):
        if k == "static_vars" or old.get(k) == new.get(k):
            continue
        if k == "agent" and isinstance(old.get(k), dict) and isinstance(new.get(k), dict):
            a, b = old[k], new[k]
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) == b.get(sub):
                    continue
                if sub == "prompt":
                    out.append(Reason("prompt_changed", _prompt_name(new)))
                elif sub == "model":
                    out.append(Reason("model_changed"))
                else:
                    fields.append(f"agent.{sub}")
        elif k == "prompt" and (old.get("agent") or {}).get("prompt") != (new.get("agent") or {}).get("prompt"):
            continue  # said above, as prompt_changed
        else:
            fields.append(k)
    if fields:
        out.append(Reason("definition_changed", ", ".join(fields)))
    return out or [Reason("definition_changed", "")]


def _prompt_name(definition: dict) -> str:
    """The prompt file's path, or '' for a prompt written in the pipeline file."""
    from .resolve_agents import is_prompt_file

    p = definition.get("prompt")
    return p.strip() if isinstance(p, str) and is_prompt_file(p) else ""
