"""Git targets at run time (DESIGN §7): where a targeted step's files are, making its
worktree before the run, and the run's commit on the target's branch after it.

A step with `target: NAME` has its paths resolved under the target's worktree: the
resolver prefixes each of its inputs and outputs with `path_prefix(target)`
(`.amelia/worktrees/NAME/`, plus the project's folder in the repository), so every part
of the engine (fingerprint, cache, restore, clean, the graph's overlap rule) reads the
right file through the one project root, and a path written `docs/a.md` in a targeted
step is the branch's docs/a.md, not the user's.

A step whose model edits files (a coding agent, model_config.EDITS_FILES) also writes
what it changed under `changes_dir(step)` (`files/` and `changes.json`): hashed, cached,
shown, and what `amelia apply` puts into the user's tree.

The light helpers here run on the no-op path (`ready` is two small reads per target);
GitPython is imported only when a worktree is made or a commit is due.
"""

from __future__ import annotations

import json
import os
import re

from .errors import AmeliaError, EXIT_ENVIRONMENT, EXIT_INVALID
from .paths import file_name

WORKTREES = ".amelia/worktrees"
CHANGES = ".amelia/changes"
CHANGES_FILE = "changes.json"  # in a changes dir: {"base", "changed", "deleted"}
CHANGED_FILES = "files"  # in a changes dir: each changed file at its worktree path
# ${{ run.id }} and ${{ run.steps }} in a commit message: filled in when the commit is made.
RUN_REFS = re.compile(r"\$\{\{\s*run\.(id|steps)\s*\}\}")
DEFAULT_MESSAGE = "amelia: ${{ run.steps }}"


class TargetProblem(AmeliaError):
    """A target's worktree cannot be made or used (git refuses): said before any step runs."""

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_ENVIRONMENT):
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


# -- paths ---------------------------------------------------------------------------------

def path_prefix(name: str, subdir: str = "") -> str:
    """The project-relative prefix of a targeted step's paths: its worktree, and in it the
    project's folder (subdir, "" or ending with "/")."""
    return f"{WORKTREES}/{name}/{subdir}"


def worktree(root: str, name: str) -> str:
    return os.path.join(root, WORKTREES, name)


def pending_marker(root: str) -> str:
    """A file that exists from when a run starts targeted steps until its commits are made."""
    return os.path.join(root, WORKTREES, ".commit-pending")


def base_dir(root: str, target) -> str:
    """Where a targeted step runs and its paths start: the project's folder in the worktree."""
    return os.path.join(worktree(root, target.name), target.subdir).rstrip("/")


def in_worktree(target, path: str) -> str:
    """A targeted step's project-relative path → the same file relative to its worktree
    (what git sees), e.g. .amelia/worktrees/docs/app/x.md → app/x.md."""
    head = f"{WORKTREES}/{target.name}/"
    if not path.startswith(head):
        raise ValueError(f"{path} is not in target {target.name}'s worktree")
    return path[len(head):]


def fence(root: str, path: str) -> tuple:
    """(the folder a project-relative path must stay inside, the path relative to it): a
    target's worktree for a path in one (a symlink on the branch must not lead a write into
    the user's checkout), else the project root."""
    if path.startswith(WORKTREES + "/"):
        name, _, rest = path[len(WORKTREES) + 1:].partition("/")
        if name and not name.startswith(".") and rest:
            return worktree(root, name), rest
    return root, path


def shown(path: str) -> str:
    """A path for people: `docs/a.md (target docs)` rather than the store's prefix."""
    if path.startswith(WORKTREES + "/"):
        name, _, rest = path[len(WORKTREES) + 1:].partition("/")
        return f"{rest} (target {name})"
    return path


def changes_dir(step_id: str) -> str:
    """The directory output where a coding agent's changed files are kept (ends with "/")."""
    return f"{CHANGES}/{file_name(step_id)}/"


def edits_files(config) -> bool:
    """Whether a step's model is a coding agent that edits its working directory."""
    from .model_config import EDITS_FILES

    model = getattr(config, "model", None)
    return getattr(model, "provider", None) in EDITS_FILES


# -- before the run -----------------------------------------------------------------------

def used(pipeline, step_ids=None) -> list:
    """The targets the given steps (all when None) run in, in name order."""
    names = {s.target for s in pipeline.steps if s.target and (step_ids is None or s.id in step_ids)}
    return [t for t in pipeline.targets if t.name in names]


def ready(root: str, target) -> bool:
    """The worktree is there, on the target's branch (two small reads, no git)."""
    wt = worktree(root, target.name)
    try:
        with open(os.path.join(wt, ".git"), encoding="utf-8") as f:
            gitdir = f.read().strip()
        if not gitdir.startswith("gitdir: "):
            return False
        gitdir = os.path.join(wt, gitdir[len("gitdir: "):])  # relative: to the worktree
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
    except OSError:
        return False
    return head == f"ref: refs/heads/{target.branch}"


def prepare(pipeline, store_dir: str, step_ids=None) -> list:
    """Make (or remake) the worktree of every target the steps use; the names made.
    Raises TargetProblem: a target that cannot have its worktree stops the run before
    any step starts."""
    made = []
    for t in used(pipeline, step_ids):
        if ready(pipeline.root, t):
            continue
        from .git import BadName, BranchInUse, GitProblem, MissingBase
        from .git.worktrees import ensure_worktree, repo_root

        try:
            top = repo_root(pipeline.root)
            if top is None:
                raise TargetProblem(f"target '{t.name}': {pipeline.root} is not in a git repository",
                                    hint="run `git init` (and commit) first, or remove `target:` from the steps",
                                    exit_code=EXIT_INVALID)
            ensure_worktree(top, t.name, t.branch, t.base, store_dir)
        except (BadName, BranchInUse, MissingBase) as e:
            raise TargetProblem(f"target '{t.name}': {e.message}", hint=e.hint, exit_code=EXIT_INVALID) from None
        except GitProblem as e:
            raise TargetProblem(f"target '{t.name}': {e.message}", hint=e.hint) from None
        made.append(t.name)
    return made


# -- after the steps ----------------------------------------------------------------------

def commit_message(target, pipeline, run_id: str, step_ids) -> str:
    """The target's message template with the run's id and steps filled in (params and
    name were filled in when the file was resolved)."""
    values = {"id": run_id, "steps": ", ".join(step_ids)}
    text = target.commit or DEFAULT_MESSAGE
    return RUN_REFS.sub(lambda m: values[m.group(1)], text)


def paths_to_commit(pipeline, target, step_ids) -> list:
    """Worktree-relative paths the steps own: their outputs in the worktree, and what a
    coding agent among them changed there (its changes dir says)."""
    by_id = pipeline.by_id()
    out: list = []
    for sid in step_ids:
        step = by_id[sid]
        for o in step.outputs:
            if o.startswith(f"{WORKTREES}/{target.name}/"):
                out.append(in_worktree(target, o))
            elif o.startswith(CHANGES + "/"):
                out += changed_paths(os.path.join(pipeline.root, o))
    return list(dict.fromkeys(out))


def changed_paths(changes: str) -> list:
    """The worktree-relative paths a coding agent's changes dir lists (changed and deleted)."""
    try:
        with open(os.path.join(changes, CHANGES_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    from .git.refs import path_problem

    listed = [p for p in (data.get("changed") or []) + (data.get("deleted") or []) if isinstance(p, str)]
    return [p for p in listed if path_problem(p) is None]  # written by us; checked again all the same


def commit(pipeline, target, step_ids, run_id: str, push: bool = False) -> tuple:
    """Commit the steps' files on the target's branch: (sha or None when nothing changed,
    paths, pushed). Raises GitProblem."""
    from .git.worktrees import commit_paths, push as push_branch

    wt = worktree(pipeline.root, target.name)
    files = paths_to_commit(pipeline, target, step_ids)
    sha = commit_paths(wt, files, commit_message(target, pipeline, run_id, step_ids),
                       target.author or None) if files else None
    pushed = False
    if push and target.push:  # asked for: also when this run had nothing new to commit
        push_branch(wt, target.push, target.branch)
        pushed = True
    return sha, tuple(files), pushed
