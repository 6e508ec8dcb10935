"""`amelia targets` and `amelia targets prune`: the pipeline's git targets and Amelia's
worktrees (DESIGN §7). Reads git through amelia.git.worktrees (GitPython, imported there
only when a command runs); never touches the user's checkout, index or branches.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .errors import EnvironmentProblem

# What a row's worktree is, for people and for --json.
READY = "ready"  # there, on the target's branch
NOT_MADE = "not made"  # declared; made by the first run of one of its steps
DELETED = "deleted"  # registered with git, folder gone (prune unregisters it)
OTHER_BRANCH = "other branch"  # the target now names another branch (the next run switches)
STALE = "stale"  # no declared target has this name
SCRATCH = "scratch"  # a coding agent's sandbox left behind


@dataclass(frozen=True)
class Row:
    """One line of `amelia targets`: a declared target, or a worktree no target names."""

    name: str
    declared: bool
    state: str
    worktree: str  # relative to the project root
    branch: str | None  # the declared branch (declared), the worktree's (else; None: detached)
    base: str = ""
    push: str = ""
    exists: bool = False
    sha: str = ""
    subject: str = ""
    time: int = 0

    def to_dict(self) -> dict:
        commit = None
        if self.sha:
            commit = {"sha": self.sha, "short": self.sha[:7], "subject": self.subject, "time": self.time}
        return {"name": self.name, "declared": self.declared, "state": self.state,
                "branch": self.branch, "base": self.base or None, "push": self.push or None,
                "worktree": self.worktree, "exists": self.exists, "last_commit": commit}


def _repo(root: str) -> str:
    """The git work tree around the project; exit 4 outside one (targets need git)."""
    from .git import GitProblem
    from .git.worktrees import repo_root

    try:
        top = repo_root(root)
    except GitProblem as e:
        raise EnvironmentProblem(e.message, hint=e.hint) from None
    if top is None:
        raise EnvironmentProblem(f"{root} is not in a git repository",
                                 hint="git targets need one: run `git init` and commit once")
    return top


def _open(file):
    """(pipeline, store or None): the project as `clean` opens it (no store is made)."""
    from .api import open_project

    return open_project(file, create=False)


def _store_dir(root: str) -> str:
    from .store import STORE_DIR

    return os.path.join(root, STORE_DIR)


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, os.path.realpath(root)).replace(os.sep, "/")


def rows(pipeline, top: str) -> list:
    """Declared targets (by name), then the worktrees none of them names."""
    from .git import GitProblem
    from .git.worktrees import list_worktrees

    root = pipeline.root
    try:
        found = list_worktrees(top, _store_dir(root))
    except GitProblem as e:
        raise EnvironmentProblem(e.message, hint=e.hint) from None
    by_name = {w.name: w for w in found if not w.scratch}
    out = []
    for t in pipeline.targets:
        w = by_name.pop(t.name, None)
        if w is None:
            from .targets import WORKTREES

            from .git.worktrees import branch_head

            head = branch_head(top, t.branch)  # the branch may be there without its worktree
            sha, subject, when = head if head else ("", "", 0)
            out.append(Row(t.name, True, NOT_MADE, f"{WORKTREES}/{t.name}", t.branch, t.base, t.push,
                           sha=sha, subject=subject, time=when))
            continue
        state = DELETED if not w.exists else READY if w.branch == t.branch else OTHER_BRANCH
        out.append(Row(t.name, True, state, _rel(root, w.path), t.branch, t.base, t.push,
                       w.exists, w.sha, w.subject, w.time))
    for w in found:
        if w.scratch or w.name in by_name:
            out.append(Row(w.name, False, SCRATCH if w.scratch else STALE, _rel(root, w.path),
                           w.branch, exists=w.exists, sha=w.sha, subject=w.subject, time=w.time))
    return out


def listing(file) -> tuple:
    """(pipeline, rows) for `amelia targets`."""
    pipeline, store = _open(file)
    if store is not None:
        store.close()  # nothing of the store is read: the worktrees are git's to list
    return pipeline, rows(pipeline, _repo(pipeline.root))


def age(ts: int, now: float | None = None) -> str:
    """`5m ago`: how old a commit is, in its largest unit."""
    seconds = max(0, int((now if now is not None else time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def listing_text(pipeline, found, now: float | None = None) -> str:
    from .render import escape_line

    if not found:
        return f"no targets in {os.path.basename(pipeline.file)} and no worktrees of Amelia's\n"
    head = ("TARGET", "BRANCH", "BASE", "PUSH", "WORKTREE", "STATE", "LAST COMMIT")
    table = [head]
    for r in found:
        commit = f"{r.sha[:7]} {age(r.time, now)}  {escape_line(r.subject)}" if r.sha else "-"
        table.append((escape_line(r.name), escape_line(r.branch or "(detached)"),
                      escape_line(r.base) if r.declared else "-", escape_line(r.push or "-"),
                      escape_line(r.worktree), r.state, commit))
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in table]
    unused = sum(1 for r in found if r.state in (STALE, SCRATCH, DELETED))
    if unused:
        lines.append(f"amelia: {unused} worktree{'s' if unused != 1 else ''} not in use: "
                     "`amelia targets prune` removes them (their branches are kept)")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def listing_json(pipeline, found) -> str:
    from .render import to_json

    return to_json({"pipeline": pipeline.name, "root": pipeline.root,
                    "targets": [r.to_dict() for r in found if r.declared],
                    "other": [r.to_dict() for r in found if not r.declared]})


# -- prune ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Removed:
    name: str
    worktree: str
    branch: str | None
    why: str


def prune(file, wait: bool = False) -> list:
    """Remove, under the project lock (no run's worktree goes from under it), the worktrees
    whose folder is gone, whose target is not declared, and every scratch one."""
    from .git import GitProblem
    from .git.worktrees import list_worktrees, prune as prune_worktrees

    pipeline, store = _open(file)
    try:
        top = _repo(pipeline.root)
        if store is None:  # no .amelia/: Amelia never made a worktree here
            return []
        store.lock.acquire(wait=wait)
        declared = [t.name for t in pipeline.targets]
        try:
            before = list_worktrees(top, store.dir)
            names = set(prune_worktrees(top, store.dir, declared))
        except GitProblem as e:
            raise EnvironmentProblem(e.message, hint=e.hint) from None
        out = []
        for w in before:
            if w.name not in names or (w.exists and not w.scratch and w.name in declared):
                continue
            why = ("scratch" if w.scratch else "its folder was deleted" if not w.exists
                   else f"no target '{w.name}' is declared")
            out.append(Removed(w.name, _rel(pipeline.root, w.path), w.branch, why))
        return out
    finally:
        if store is not None:
            store.close()


def prune_text(removed) -> str:
    from .render import escape_line

    if not removed:
        return "amelia: nothing to prune\n"
    lines = [f"removed {escape_line(r.worktree)} ({escape_line(r.why)})" for r in removed]
    kept = sorted({r.branch for r in removed if r.branch})
    n = len(removed)
    tail = f"; branches are kept: {', '.join(escape_line(b) for b in kept)}" if kept else ""
    lines.append(f"amelia: removed {n} worktree{'s' if n != 1 else ''}{tail}")
    return "\n".join(lines) + "\n"


def prune_json(removed) -> str:
    from .render import to_json

    return to_json({"removed": [{"name": r.name, "worktree": r.worktree, "branch": r.branch,
                                 "why": r.why} for r in removed],
                    "branches_kept": sorted({r.branch for r in removed if r.branch})})
