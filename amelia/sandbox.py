"""The worktree a coding agent edits in (DESIGN §7, issue 14): never the user's checkout.

A step whose model edits files (`targets.edits_files`) makes its calls between `prepare`
and `finish` (or `discard` when the call failed or was cancelled):
- with `target:`, in the target's worktree (made before the run by `targets.prepare`).
  Earlier steps of the target may have left uncommitted files there, so what is
  uncommitted is snapshotted first (path → content hash): only the agent's own changes
  count;
- without, in a scratch worktree at the user's HEAD into which their uncommitted files
  are copied and committed as a baseline (the agent sees their tree as it is, and its
  changes are measured against that). It is removed afterwards, whatever happened.
After the call each changed path is checked (a sane name, inside the worktree, a regular
file: a symlink the agent made is never followed) and copied into the step's changes dir
(`targets.changes_dir`): `files/<path>` and `changes.json`. Those are step outputs
(hashed, cached, shown); they reach the user's tree only through a target's branch or
`amelia apply`. Paths under `.amelia/` or `.git` are never recorded.

GitPython is imported (through amelia.git.worktrees) only when a sandbox is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from dataclasses import dataclass

from . import targets
from .steps import StepError

BASELINE_MESSAGE = "amelia: the uncommitted state of your checkout (agent baseline)"
# `git worktree add/remove` edit the repository's shared worktree list: one at a time.
_WORKTREE_LOCK = threading.Lock()
_NEVER = (".amelia", ".git")  # folders whose files are never a change an agent made


@dataclass(frozen=True)
class Sandbox:
    workdir: str  # the agent's working directory: the project's folder in the worktree
    worktree: str  # the worktree's top; the paths of changes.json are relative to it
    base: str  # the commit the agent started from
    target: str = ""  # the target's name; "" for a scratch worktree (removed afterwards)
    repo: str = ""  # the user's repository (its top), for removing a scratch worktree
    before: tuple = ()  # (path, state) of what was uncommitted in a target's worktree
    own: tuple = ()  # worktree-relative paths of the step's own outputs: not changes
    step_id: str = ""


@dataclass(frozen=True)
class Changes:
    base: str
    changed: tuple
    deleted: tuple
    refused: tuple  # (path, why)


# -- before the call -----------------------------------------------------------------------

def prepare(step, ctx) -> Sandbox:
    """The worktree the step's agent works in. Raises StepError."""
    from .git import GitProblem

    try:
        return _in_target(step, ctx) if step.target else _in_scratch(step, ctx)
    except GitProblem as e:
        raise StepError(f"cannot prepare the agent's worktree: {e.message}", hint=e.hint) from None


def _in_target(step, ctx) -> Sandbox:
    from .git.worktrees import changed_files

    t = ctx.pipeline.target(step.target)
    wt = os.path.realpath(targets.worktree(ctx.root, t.name))
    if not os.path.isfile(os.path.join(wt, ".git")):
        raise StepError(f"the worktree of target '{t.name}' is missing ({wt})",
                        hint="run again: amelia makes it before the steps run")
    base = _head(wt)
    before = tuple((p, _state(wt, p)) for p in changed_files(wt) if _confined(wt, p))
    workdir = targets.base_dir(ctx.root, t)
    os.makedirs(workdir, exist_ok=True)  # the project's folder may not be on the branch yet
    own = tuple(targets.in_worktree(t, o) for o in step.outputs
                if o.startswith(f"{targets.WORKTREES}/{t.name}/"))
    return Sandbox(workdir, wt, base, t.name, "", before, own, step.id)


def _in_scratch(step, ctx) -> Sandbox:
    from .git.worktrees import commit_paths, discard_scratch, repo_root, scratch_worktree

    top = repo_root(ctx.root)
    if top is None:
        raise StepError(f"a coding agent ({step.config.model.provider}) needs a git repository, "
                        f"and {ctx.root} is not in one",
                        hint="run `git init` and commit once: the agent then edits a scratch "
                             "worktree, never your files directly")
    with _WORKTREE_LOCK:
        wt = os.path.realpath(scratch_worktree(top, ctx.store.dir, step.id))
    try:
        copied = _copy_checkout(top, wt)
        base = (commit_paths(wt, copied, BASELINE_MESSAGE) if copied else None) or _head(wt)
        sub = os.path.relpath(os.path.realpath(ctx.root), top)
        workdir = wt if sub == "." else os.path.join(wt, sub)
        os.makedirs(workdir, exist_ok=True)
    except BaseException:
        from .git import GitProblem

        try:
            with _WORKTREE_LOCK:
                discard_scratch(top, ctx.store.dir, step.id)
        except (GitProblem, OSError):
            pass  # the first error is the one to report; the next run removes it
        raise
    prefix = "" if sub == "." else sub.replace(os.sep, "/") + "/"
    own = tuple(prefix + o for o in step.outputs if not o.startswith(".amelia/"))
    return Sandbox(workdir, wt, base, "", top, (), own, step.id)


def _copy_checkout(top: str, wt: str) -> list:
    """Copy the user's uncommitted state (modified and untracked files, not ignored ones;
    deletions) into the scratch worktree: the paths to commit as its baseline."""
    from .git.refs import path_problem

    paths = []
    for path in _user_status(top):
        if _never(path) or path_problem(path):
            continue  # the store, or a name git would choke on: the agent does without it
        src, dest = os.path.join(top, path), os.path.join(wt, path)
        if not _confined(wt, path):
            continue
        try:
            info = os.lstat(src)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            if os.path.lexists(dest) and not os.path.isdir(dest):
                _remove(dest)  # a tracked file the user replaced by a folder
                paths.append(path)
            continue  # its files are listed one by one (a nested repository is not copied)
        if os.path.lexists(dest) or os.path.isdir(dest):
            _remove(dest)
        if info is None:
            pass  # deleted in the checkout: deleted here too
        elif stat.S_ISLNK(info.st_mode):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.symlink(os.readlink(src), dest)  # copied as a link, never followed
        elif stat.S_ISREG(info.st_mode):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            _copy_file(src, dest)
        else:
            continue
        paths.append(path)
    return paths


def _user_status(top: str) -> list:
    from .git.worktrees import checkout_status

    return checkout_status(top)


def _head(wt: str) -> str:
    from .git.worktrees import head_sha

    return head_sha(wt)


# -- after the call ------------------------------------------------------------------------

def finish(sandbox: Sandbox, ctx, step) -> Changes:
    """Record what the agent changed in the step's changes dir, then remove a scratch
    worktree. Raises StepError when the agent made a change Amelia refuses to keep."""
    from .git import GitProblem

    try:
        try:
            changes = collect(sandbox)
        except GitProblem as e:
            raise StepError(f"cannot read what the agent changed: {e.message}", hint=e.hint) from None
        if changes.refused:
            raise _refused(sandbox, changes.refused)
        try:
            _write(sandbox, changes, ctx.root, targets.changes_dir(step.id))
        except OSError as e:
            raise StepError(f"cannot record what the agent changed: {e}") from None
    finally:
        discard(sandbox, ctx)
    n = len(changes.changed) + len(changes.deleted)
    ctx.progress(step.id, f"the agent changed {n} file{'s' if n != 1 else ''}")
    return changes


def _refused(sandbox: Sandbox, refused) -> StepError:
    """The step fails (so none of its outputs is kept, nothing is committed) naming what
    the agent did that Amelia will not store: a symlink, a name git would read as an
    option, a path out of the worktree."""
    from .safetext import safe

    listed = "; ".join(f"{safe(p, newlines=False)!r} {why}" for p, why in refused[:10])
    more = f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
    where = (f"they stay, uncommitted, in the target's worktree {sandbox.worktree} for you to "
             f"look at" if sandbox.target else "its scratch worktree is removed")
    return StepError(f"the agent made changes amelia refuses to keep: {listed}{more}",
                     hint=f"nothing of this step is kept or committed; {where}")


def discard(sandbox: Sandbox, ctx) -> None:
    """Remove a scratch worktree (a target's stays). Never raises: a leftover is removed by
    the step's next run or `amelia targets prune`."""
    if sandbox.target:
        return
    from .git import GitProblem
    from .git.worktrees import discard_scratch

    try:
        with _WORKTREE_LOCK:
            discard_scratch(sandbox.repo, ctx.store.dir, sandbox.step_id)
    except (GitProblem, OSError) as e:
        ctx.warn(sandbox.step_id, f"could not remove the scratch worktree {sandbox.worktree}: "
                                  f"{getattr(e, 'message', e)}")


def collect(sandbox: Sandbox) -> Changes:
    """What the agent changed: against the baseline, and for a target against the snapshot
    of what was uncommitted before the call."""
    from .git.refs import path_problem
    from .git.worktrees import changed_files

    wt, before = sandbox.worktree, dict(sandbox.before)
    changed, deleted, refused = [], [], []
    for path in sorted(set(changed_files(wt, since=sandbox.base)) | set(before)):
        if _never(path) or _owned(path, sandbox.own):
            continue
        problem = path_problem(path)
        if problem is None and not _confined(wt, path):
            problem = "leads out of the worktree through a symbolic link"
        if problem:
            refused.append((path, problem))
            continue
        state = _state(wt, path)
        if path in before and before[path] == state:
            continue  # as an earlier step left it
        if state is None:
            deleted.append(path)
        elif state.startswith("file:"):
            changed.append(path)
        elif state.startswith("link:"):
            refused.append((path, "is a symbolic link (amelia never follows one an agent made)"))
        elif state == "dir":
            refused.append((path, "is a folder git does not list file by file (a nested repository?)"))
        else:
            refused.append((path, "is not a regular file"))
    return Changes(sandbox.base, tuple(changed), tuple(deleted), tuple(refused))


def _write(sandbox: Sandbox, changes: Changes, root: str, rel: str) -> None:
    """`files/<path>` for each changed file and `changes.json`, in a fresh changes dir
    (root/rel). Its folder must really be in the project: nothing is removed or written
    through a link."""
    from .confine import Escape, check_dir

    out = os.path.join(root, rel.rstrip("/"))
    try:
        check_dir(root, os.path.dirname(out))
    except Escape as e:
        raise StepError(str(e), hint=e.hint) from None
    if os.path.islink(out) or os.path.isfile(out):
        os.unlink(out)
    elif os.path.isdir(out):
        shutil.rmtree(out)  # normally emptied by the runner already (a declared output)
    os.makedirs(out)
    files = os.path.join(out, targets.CHANGED_FILES)
    for path in changes.changed:
        dest = os.path.join(files, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        _copy_file(os.path.join(sandbox.worktree, path), dest)
    record = {"base": changes.base, "changed": list(changes.changed),
              "deleted": list(changes.deleted), "target": sandbox.target}
    from .atomic import write_text

    write_text(os.path.join(out, targets.CHANGES_FILE), json.dumps(record, indent=2) + "\n")


# -- helpers -------------------------------------------------------------------------------

def _never(path: str) -> bool:
    return any(part in _NEVER for part in path.split("/"))


def _owned(path: str, own) -> bool:
    """A path the step declares as its output (the answer file): Amelia writes it, not a change."""
    return any(path == o or (o.endswith("/") and path.startswith(o)) for o in own)


def _confined(wt: str, path: str) -> bool:
    """The folder holding path is really inside the worktree (no symlink out)."""
    parent = os.path.realpath(os.path.dirname(os.path.join(wt, path)))
    return parent == wt or parent.startswith(wt + os.sep)


def _state(wt: str, path: str) -> str | None:
    """What is at path, compared before and after the call: None (absent), `file:<hash>`
    (content and executable bit), `link:<target>`, `dir`, `other`."""
    full = os.path.join(wt, path)
    try:
        info = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(full)
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if not stat.S_ISREG(info.st_mode):
        return "other"
    h = hashlib.sha256()
    fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"file:{h.hexdigest()}:{'x' if info.st_mode & 0o111 else '-'}"


def _copy_file(src: str, dest: str) -> None:
    """Copy a regular file's bytes and executable bit; a symlink at src is never followed."""
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        mode = os.fstat(fin.fileno()).st_mode
    os.chmod(dest, 0o755 if mode & 0o111 else 0o644)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
