"""`amelia apply RUN STEP`: put a coding agent's changes into the user's tree, after
showing them (issue 14: an agent's edits reach the user's files only through a target's
branch or this explicit, confirmed command).

The changes come from the step's record in that run: its changes dir output
(`targets.changes_dir(step)`, a tree object) holding `changes.json` and `files/`. They are
read from the object store (bytes checked against their hashes), never restored into the
project first. Every path is checked (git.refs.path_problem, inside the project, no
symlink out, not in .amelia/) before anything is written: one bad path refuses the whole
apply. Git is never touched: nothing is staged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .errors import EnvironmentProblem, UsageError

ADD, MODIFY, DELETE = "add", "modify", "delete"
MAX_DIFF = 1 << 20  # a larger file is said to differ, not diffed
NO_CHANGES_HINT = ("only a step whose model edits files (claude-code) has changes to apply; "
                   "a targeted step's outputs are on its branch: merge it")


class ApplyRefused(EnvironmentProblem):
    """The stored changes name a path that must not be written (exit 4): nothing is."""


@dataclass(frozen=True)
class Change:
    path: str  # relative to the repository's top (the worktree's paths), as changes.json says
    action: str  # add | modify | delete
    dest: str = field(repr=False, default="")  # the user's file, absolute
    digest: str = field(repr=False, default="")  # the new content's object (not for delete)
    diff: str | None = None  # unified diff; None for a binary or very large file

    def to_dict(self, root: str) -> dict:
        return {"path": self.path, "project_path": os.path.relpath(self.dest, root).replace(os.sep, "/"),
                "action": self.action, "diff": self.diff}


@dataclass(frozen=True)
class Changes:
    run_id: str
    step: str
    base: str  # the commit the agent started from
    target: str
    changes: tuple  # Change, only the files that differ from the user's
    unchanged: tuple = ()  # paths listed whose user file already matches


# -- reading -------------------------------------------------------------------------------

def _changes_output(step: str, outputs: dict) -> str | None:
    from .targets import CHANGES, changes_dir

    if changes_dir(step) in outputs:
        return changes_dir(step)
    return next((o for o in outputs if o.startswith(CHANGES + "/") and o.endswith("/")), None)


def _object(store, digest: str) -> bytes:
    """An object's bytes, checked against its name (a corrupt one is never applied)."""
    from .store.objects import CorruptObject, object_name

    name = object_name(digest)
    try:
        return store.objects.read_bytes(digest)
    except OSError:
        raise EnvironmentProblem(f"object {name[:12]} of the step's changes is missing from the store",
                                 hint="run the step again (`amelia run --force STEP`)") from None
    except CorruptObject:
        raise EnvironmentProblem(f"object {name[:12]} of the step's changes is corrupt",
                                 hint="`amelia cache verify` removes it; run the step again") from None


def _step_row(store, run_id: str, step: str):
    from .errors import did_you_mean

    steps = store.history.steps(run_id)
    row = next((s for s in steps if s.step == step), None)
    if row is None:
        names = [s.step for s in steps]
        raise UsageError(f"run {run_id} has no step '{step}'",
                         hint=did_you_mean(step, names) or
                         (f"its steps are: {', '.join(names)}" if names else "it ran no step"))
    if row.status not in ("ran", "cached") or not row.key:
        raise UsageError(f"step '{step}' did not succeed in run {run_id} ({row.status}): "
                         "it has no changes to apply", hint="apply a run in which it succeeded")
    return row


def _manifest(store, run_id: str, step: str) -> dict:
    """The step's changes dir in that run: {path in the dir: object digest}."""
    from .store.objects import CorruptObject, TREE_PREFIX

    row = _step_row(store, run_id, step)
    record = store.records.get(row.key)
    if record is None:
        raise UsageError(f"the result of step '{step}' in run {run_id} is no longer in the cache",
                         hint="`cache gc`/`cache clear` dropped it; run the step again")
    out = _changes_output(step, record.outputs)
    if out is None:
        raise UsageError(f"step '{step}' has no changes to apply", hint=NO_CHANGES_HINT)
    digest = record.outputs[out]
    try:
        if not digest.startswith(TREE_PREFIX):
            raise CorruptObject(digest)
        return store.objects.read_tree(digest, verify=True)
    except (OSError, CorruptObject):
        raise EnvironmentProblem(f"the stored changes of step '{step}' are missing or corrupt",
                                 hint="run the step again (`amelia run --force STEP`)") from None


def recorded(store, run_id: str, step: str) -> dict | None:
    """What a coding step changed in that run, as its changes.json says ({"changed",
    "deleted", "target"}), for `amelia show`; None when it has no (readable) changes dir."""
    from .errors import AmeliaError
    from .targets import CHANGES_FILE

    try:
        manifest = _manifest(store, run_id, step)
        _, target, changed, deleted = _listed(json.loads(_object(store, manifest[CHANGES_FILE])))
    except (AmeliaError, KeyError, ValueError):
        return None
    return {"changed": changed, "deleted": deleted, "target": target}


def _listed(data) -> tuple:
    """(base, target, changed, deleted) from changes.json, its shape checked."""
    from .targets import CHANGES_FILE

    def paths(key):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ApplyRefused(f"{CHANGES_FILE}: `{key}` is not a list of paths",
                               hint="the stored changes are damaged; run the step again")
        return value

    if not isinstance(data, dict):
        raise ApplyRefused(f"{CHANGES_FILE} is not an object",
                           hint="the stored changes are damaged; run the step again")
    base, target = data.get("base") or "", data.get("target") or ""
    return str(base), str(target), paths("changed"), paths("deleted")


# -- checking ------------------------------------------------------------------------------

def _refuse(path: str, why: str):
    from .safetext import escape_line

    return ApplyRefused(f"refusing to apply: path {escape_line(repr(path))} {why}",
                        hint="nothing was written; the agent's changes name a path outside "
                             "what Amelia writes (look at them in the run's log)")


def _dest(root: str, top: str, path: str) -> str:
    """The user's file for a changed path, after every check (raises ApplyRefused)."""
    from .confine import Escape, check_parent
    from .git.refs import path_problem
    from .store.objects import SKIP_DIRS

    problem = path_problem(path)
    if problem:
        raise _refuse(path, problem)
    if path.endswith("/") or any(part in ("", ".") for part in path.split("/")):
        raise _refuse(path, "is not a file's path")
    dest = os.path.normpath(os.path.join(top, path))
    rel = os.path.relpath(dest, root)
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        raise _refuse(path, "is outside the project")
    if any(part in SKIP_DIRS for part in rel.split(os.sep)):
        raise _refuse(path, "is in .amelia/ or .git/")
    try:
        check_parent(root, dest)
    except Escape as e:
        raise _refuse(path, f"leads out of the project ({e})") from None
    if os.path.islink(dest):
        raise _refuse(path, "is a symbolic link in your tree; apply replaces only files")
    if os.path.isdir(dest):
        raise _refuse(path, "is a directory in your tree")
    return dest


def _text(data: bytes):
    if b"\0" in data or len(data) > MAX_DIFF:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _diff(path: str, old: bytes | None, new: bytes | None) -> str | None:
    import difflib

    a = _text(old) if old is not None else ""
    b = _text(new) if new is not None else ""
    if a is None or b is None:
        return None
    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                 "/dev/null" if old is None else f"a/{path}",
                                 "/dev/null" if new is None else f"b/{path}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def top_of(root: str) -> str:
    """What the agent's paths are relative to: the repository's top (its worktree was one
    of this repository's), else the project root."""
    from .git import GitProblem
    from .git.worktrees import repo_root

    try:
        return repo_root(root) or root
    except GitProblem as e:
        raise EnvironmentProblem(e.message, hint=e.hint) from None


def load(store, run_id: str, step: str, top: str) -> Changes:
    """The step's changes in that run, every path checked, each compared with the user's
    file (top: the repository's top, which the agent's worktree paths are relative to)."""
    from .targets import CHANGED_FILES, CHANGES_FILE

    root = os.path.realpath(store.root)
    top = os.path.realpath(top)
    manifest = _manifest(store, run_id, step)
    if CHANGES_FILE not in manifest:
        raise ApplyRefused(f"the stored changes of step '{step}' have no {CHANGES_FILE}",
                           hint="the stored changes are damaged; run the step again")
    try:
        data = json.loads(_object(store, manifest[CHANGES_FILE]))
    except ValueError:
        raise ApplyRefused(f"{CHANGES_FILE} of step '{step}' is not JSON",
                           hint="the stored changes are damaged; run the step again") from None
    base, target, changed, deleted = _listed(data)
    both = set(changed) & set(deleted)
    if both:
        raise _refuse(sorted(both)[0], "is listed both as changed and as deleted")
    # Every path first: one refused path and nothing is read or written.
    dests = {p: _dest(root, top, p) for p in [*changed, *deleted]}
    out, same = [], []
    for p in changed:
        digest = manifest.get(f"{CHANGED_FILES}/{p}")
        if digest is None:
            raise ApplyRefused(f"the stored changes list {p!r} but hold no copy of it",
                               hint="the stored changes are damaged; run the step again")
        new = _object(store, digest)
        old = _read(dests[p])
        if old == new:
            same.append(p)
            continue
        out.append(Change(p, ADD if old is None else MODIFY, dests[p], digest, _diff(p, old, new)))
    for p in deleted:
        old = _read(dests[p])
        if old is None:
            same.append(p)
            continue
        out.append(Change(p, DELETE, dests[p], "", _diff(p, old, None)))
    out.sort(key=lambda c: c.path)
    return Changes(run_id, step, base, target, tuple(out), tuple(sorted(same)))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise EnvironmentProblem(f"cannot read {path}: {e.strerror}") from None


# -- writing -------------------------------------------------------------------------------

def write(store, changes: Changes) -> None:
    """Write the new files (atomically, bytes checked against their hash) and delete the
    deleted ones; each path checked again right before (the disk may have changed)."""
    from .confine import Escape, check_parent
    from .store.objects import EXEC_MODE, EXEC_PREFIX, FILE_MODE, CorruptObject, atomic_copy, object_name

    root = os.path.realpath(store.root)
    for c in changes.changes:
        try:
            check_parent(root, c.dest)
            if c.action == DELETE:
                os.unlink(c.dest)
                continue
            mode = EXEC_MODE if c.digest.startswith(EXEC_PREFIX) else FILE_MODE
            atomic_copy(store.objects.path(c.digest), c.dest, object_name(c.digest), mode)
        except Escape as e:
            raise _refuse(c.path, f"leads out of the project ({e})") from None
        except CorruptObject:
            raise EnvironmentProblem(f"the stored copy of {c.path} is corrupt; it was not written",
                                     hint="`amelia cache verify`, then run the step again") from None
        except OSError as e:
            if c.action == DELETE and isinstance(e, FileNotFoundError):
                continue  # gone since it was shown: what was asked
            raise EnvironmentProblem(f"cannot write {c.path}: {e.strerror}") from None


# -- showing -------------------------------------------------------------------------------

def summary(c: Change) -> str:
    word = {ADD: "new file", MODIFY: "modified", DELETE: "deleted"}[c.action]
    return f"{word}: {c.path}"


def diff_text(changes: Changes) -> str:
    """What `apply` shows before asking: each file's diff (text from an agent: escaped)."""
    from .safetext import escape, escape_line

    parts = []
    if changes.changes:
        where = f" in target {changes.target}" if changes.target else ""
        started = f", started at {changes.base[:7]}{where}" if changes.base else where
        parts.append(escape_line(f"step {changes.step} of run {changes.run_id}{started}:") + "\n")
    for c in changes.changes:
        parts.append(f"{escape_line(summary(c))}\n")
        if c.diff is None:
            parts.append("  (binary or large file: not shown)\n")
        else:
            parts.append(escape(c.diff))
    return "".join(parts)


def to_json(changes: Changes, root: str, applied: bool) -> str:
    from .render import to_json as dump

    return dump({"run": changes.run_id, "step": changes.step, "base": changes.base or None,
                 "target": changes.target or None,
                 "changes": [c.to_dict(os.path.realpath(root)) for c in changes.changes],
                 "unchanged": list(changes.unchanged), "applied": applied})
