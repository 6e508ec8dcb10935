"""Worktrees for git targets, commits and pushes there; the user's checkout is never touched.

Every git command runs through GitPython (imported inside `_git`), never a shell, with:
- names checked by `refs` first and given after `--end-of-options` (paths after `--`,
  read literally: `--literal-pathspecs`);
- no hooks of the user's repository (`core.hooksPath=/dev/null`, `--no-verify`), no
  signing prompts (`commit.gpgsign=false`), no fsmonitor program;
- no password prompt (`GIT_TERMINAL_PROMPT=0`): a push that needs one fails;
- the variables that point git at a repository (`GIT_DIR`, `GIT_INDEX_FILE`, ... as
  `git rev-parse --local-env-vars` lists them) removed, as git itself does when it works
  in another repository: run from a user's hook, Amelia must not stage into the user's
  index. GitPython can only add variables, so they are removed by `env -u`.

Layout: `<store>/worktrees/<target>` per target, `<store>/worktrees/.scratch/<step>` for
a step without a target (a target name never starts with '.').
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass

from . import BadName, BranchInUse, GitProblem, MissingBase, NotARepository
from .refs import AUTHOR, base_problem, path_problem, ref_problem, remote_problem, target_name_problem

FALLBACK_NAME = "amelia"
FALLBACK_EMAIL = "amelia@localhost"
SCRATCH = ".scratch"
MAX_MESSAGE = 64 * 1024  # one argv string; Linux caps each at 128 KiB

_LOCAL_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE", "GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE", "GIT_COMMON_DIR",
)
LOCAL_ENV = _LOCAL_ENV  # public: other git callers (amelia.include) remove the same variables
_SAFE_CONFIG = ("core.hooksPath=/dev/null", "commit.gpgsign=false", "tag.gpgsign=false",
                "core.fsmonitor=false")


@dataclass(frozen=True)
class WorktreeInfo:
    """One of Amelia's worktrees as `amelia targets` shows it."""

    name: str  # the target's name, or the scratch folder's
    path: str
    branch: str | None  # None when detached (scratch)
    exists: bool  # False: the folder was deleted by hand (prune removes the entry)
    scratch: bool
    sha: str = ""
    subject: str = ""
    time: int = 0  # commit time, seconds since the epoch


def _git(cwd: str, *args: str, env: dict | None = None, check: bool = True) -> tuple:
    """Run `git ARGS` in cwd: (status, stdout, stderr). A failure raises GitProblem when check."""
    import git
    from git.exc import GitCommandNotFound

    exe = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    unset = [v for v in _LOCAL_ENV if v in os.environ]
    prefix = []
    if unset:
        prefix = [shutil.which("env") or "/usr/bin/env"]
        for v in unset:
            prefix += ["-u", v]
    config = []
    for c in _SAFE_CONFIG:
        config += ["-c", c]
    command = [*prefix, exe, *config, *args]
    try:
        status, out, err = git.Git(cwd).execute(
            command, with_extended_output=True, with_exceptions=False,
            env={"GIT_TERMINAL_PROMPT": "0", **(env or {})})
    except GitCommandNotFound as e:
        raise GitProblem("git is not installed (or not on PATH)",
                         "install git; Amelia's targets need it") from e
    if check and status != 0:
        raise GitProblem(f"git {args[0]} failed: {_last_line(err) or f'exit {status}'}")
    return status, out, err


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return (fatal or lines or [""])[-1]


def _check(what: str, value, problem) -> None:
    message = problem(value)
    if message:
        raise BadName(f"{what} {value!r} {message}", f"fix the {what} in the pipeline file")


# ---------------------------------------------------------------------------- repositories

def repo_root(path: str) -> str | None:
    """The top of the git work tree holding path, or None when path is in no work tree."""
    path = os.path.realpath(path)
    if not os.path.isdir(path):
        path = os.path.dirname(path)
        if not os.path.isdir(path):
            return None
    status, out, err = _git(path, "rev-parse", "--show-toplevel", check=False)
    if status != 0:
        if "not a git repository" in err or "must be run in a work tree" in err:
            return None
        raise GitProblem(f"git cannot use the repository at {path}: {_last_line(err)}",
                         "run `git status` there to see why")
    return os.path.realpath(out.strip()) if out.strip() else None


def _root(repo: str) -> str:
    top = repo_root(repo)
    if top is None:
        raise NotARepository(f"{repo} is not in a git repository",
                             "git targets need the project to be in a git work tree (`git init`)")
    return top


def _listing(root: str) -> list:
    """`git worktree list --porcelain` as dicts: path, head, branch (short) or None."""
    _, out, _ = _git(root, "worktree", "list", "--porcelain")
    entries, cur = [], None
    for line in out.splitlines() + [""]:
        if line.startswith("worktree "):
            cur = {"path": os.path.realpath(line[len("worktree "):]), "head": "", "branch": None}
        elif cur is None:
            continue
        elif line.startswith("HEAD "):
            cur["head"] = line[5:]
        elif line.startswith("branch "):
            ref = line[7:]
            cur["branch"] = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
        elif line == "":
            entries.append(cur)
            cur = None
    return entries


def _store(store_dir: str) -> str:
    """`<store>/worktrees`, with a .gitignore so the user's `git status` never lists it."""
    from ..paths import ignored_folder

    return ignored_folder(store_dir, "worktrees", "amelia's worktrees (git targets)")


def _unregister(root: str, path: str) -> None:
    """Drop the metadata of one worktree whose folder is gone (not `git worktree prune`,
    which would also prune the user's own stale worktrees)."""
    _git(root, "worktree", "remove", "--force", "--end-of-options", path)


def _is_live(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ".git"))


def _sha(cwd: str, rev: str) -> str | None:
    status, out, _ = _git(cwd, "rev-parse", "--verify", "--quiet", "--end-of-options",
                          rev + "^{commit}", check=False)
    return out.strip() if status == 0 else None


# ---------------------------------------------------------------------------- worktrees

def ensure_worktree(repo_root: str, name: str, branch: str, base: str, store_dir: str) -> str:
    """The worktree of target `name` at `<store>/worktrees/<name>`, on `branch` (made from
    `base` when it does not exist yet); reused when there, recreated when deleted by hand."""
    _check("target name", name, target_name_problem)
    _check("branch", branch, ref_problem)
    _check("base", base, base_problem)
    root = _root(repo_root)
    path = os.path.join(_store(store_dir), name)
    entries = _listing(root)
    mine = next((e for e in entries if e["path"] == os.path.realpath(path)), None)
    if mine and not _is_live(path):
        _unregister(root, path)  # deleted by hand: start again
        mine = None
    if mine and mine["branch"] == branch:
        return path
    if mine:  # the target's branch changed: a clean worktree is replaced, never a dirty one
        status, _, err = _git(root, "worktree", "remove", "--end-of-options", path, check=False)
        if status != 0:
            raise GitProblem(f"the worktree of target '{name}' is on branch "
                             f"'{mine['branch'] or 'detached'}', not '{branch}', and has changes",
                             f"commit or discard them in {path}, or run `amelia targets prune`")
        mine = None
    if os.path.lexists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise GitProblem(f"{path} exists and is not a worktree of this repository",
                         "remove it; Amelia makes the target's worktree there")
    for e in entries:
        if e["branch"] == branch and e["path"] != os.path.realpath(path):
            if e is entries[0] or not e["path"].startswith(os.path.dirname(path) + os.sep):
                raise BranchInUse(f"branch '{branch}' is checked out in your work tree at {e['path']}",
                                  "give the target another branch: Amelia never switches or "
                                  "commits in your own checkout")
            raise BranchInUse(f"branch '{branch}' is already the branch of worktree {e['path']}",
                              "two targets cannot share a branch")
    if _sha(root, "refs/heads/" + branch):
        _git(root, "worktree", "add", "--quiet", "--end-of-options", path, branch)
        return path
    start = _sha(root, base)
    if not start:
        raise MissingBase(f"base '{base}' is not a branch, tag or commit of this repository",
                          "fix the target's `base:` (fetch first if it is a remote branch)")
    _git(root, "worktree", "add", "--quiet", "--no-track", "-b", branch, "--end-of-options",
         path, start)
    return path


def _scratch_dir(step_id: str) -> str:
    """A folder name for any step id (`a[x]`, `source:docs`): safe characters and a hash."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", step_id)[:48]
    return f"{safe}-{hashlib.sha256(step_id.encode()).hexdigest()[:10]}"


def scratch_worktree(repo_root: str, store_dir: str, step_id: str) -> str:
    """A fresh detached worktree at the user's HEAD (committed state) for a step without a
    target: a coding agent edits there, never in the user's checkout."""
    root = _root(repo_root)
    head = _sha(root, "HEAD")
    if not head:
        raise MissingBase("the repository has no commit yet",
                          "commit once: an agent's scratch worktree starts from HEAD")
    base = os.path.join(_store(store_dir), SCRATCH)
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, _scratch_dir(step_id))
    _discard(root, path)
    _git(root, "worktree", "add", "--quiet", "--detach", "--end-of-options", path, head)
    return path


def discard_scratch(repo_root: str, store_dir: str, step_id: str) -> None:
    """Remove a step's scratch worktree (after its changes were collected)."""
    root = _root(repo_root)
    _discard(root, os.path.join(_store(store_dir), SCRATCH, _scratch_dir(step_id)))


def _discard(root: str, path: str) -> None:
    real = os.path.realpath(path)
    if any(e["path"] == real for e in _listing(root)):
        _git(root, "worktree", "remove", "--force", "--end-of-options", path)
    if os.path.lexists(path):  # a leftover folder of Amelia's own (a crash mid-add)
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)


def list_worktrees(repo_root: str, store_dir: str) -> list:
    """Amelia's worktrees (targets, then scratch ones) with their last commit."""
    root = _root(repo_root)
    base = os.path.join(os.path.realpath(store_dir), "worktrees")
    found = []
    for e in _listing(root):
        parent, leaf = os.path.split(e["path"])
        scratch = parent == os.path.join(base, SCRATCH)
        if parent != base and not scratch:
            continue
        sha, subject, when = e["head"], "", 0
        if sha:
            status, out, _ = _git(root, "log", "-1", "--format=%H%x00%ct%x00%s",
                                  "--end-of-options", sha, "--", check=False)
            if status == 0 and out.count("\0") >= 2:
                sha, when, subject = out.split("\0", 2)
                when = int(when)
        found.append(WorktreeInfo(leaf, e["path"], e["branch"], _is_live(e["path"]), scratch,
                                  sha, subject, when))
    return sorted(found, key=lambda w: (w.scratch, w.name))


def prune(repo_root: str, store_dir: str, declared) -> list:
    """Remove Amelia's worktrees whose folder is gone, whose target is no longer declared,
    and every scratch one; the names removed. Branches stay (they hold the commits)."""
    root = _root(repo_root)
    declared = set(declared)
    removed = []
    for w in list_worktrees(root, store_dir):
        if w.exists and not w.scratch and w.name in declared:
            continue
        if w.exists:
            _git(root, "worktree", "remove", "--force", "--end-of-options", w.path)
        else:
            _unregister(root, w.path)
        removed.append(w.name)
    return removed


# ---------------------------------------------------------------------------- commits

def _amelia_worktree(worktree: str) -> str:
    """Commits happen only in linked worktrees: a main checkout has a .git folder."""
    path = os.path.realpath(worktree)
    if not _is_live(path):
        raise GitProblem(f"{path} is not one of Amelia's worktrees",
                         "Amelia commits only in the worktrees it made under .amelia/worktrees")
    return path


def _configured(wt: str, env_names, keys) -> bool:
    if any(os.environ.get(n) for n in env_names):
        return True
    for key in keys:
        status, out, _ = _git(wt, "config", "--get", key, check=False)
        if status == 0 and out.strip():
            return True
    return False


def _identity(wt: str, author: str | None) -> dict:
    """Environment for the commit: the author given, and the fallback identity only for the
    parts the user has not configured (a CI box, a fresh container)."""
    env = {}
    if author is not None:
        m = AUTHOR.fullmatch(author) if isinstance(author, str) else None
        if not m or not m.group(1).strip():
            raise BadName(f"author {author!r} is not of the form 'Name <email>'",
                          "write it as `author: Jane Doe <jane@example.com>`")
        env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = m.group(1).strip(), m.group(2)
    for who in ("AUTHOR", "COMMITTER"):
        if f"GIT_{who}_NAME" not in env and not _configured(
                wt, (f"GIT_{who}_NAME",), (f"{who.lower()}.name", "user.name")):
            env[f"GIT_{who}_NAME"] = FALLBACK_NAME
        if f"GIT_{who}_EMAIL" not in env and not _configured(
                wt, (f"GIT_{who}_EMAIL", "EMAIL"), (f"{who.lower()}.email", "user.email")):
            env[f"GIT_{who}_EMAIL"] = FALLBACK_EMAIL
    return env


def _confined(wt: str, rel: str) -> None:
    """The folder a path is in must really be inside the worktree (no symlink out)."""
    parent = os.path.realpath(os.path.dirname(os.path.join(wt, rel.rstrip("/"))))
    if parent != wt and not parent.startswith(wt + os.sep):
        raise BadName(f"path {rel!r} leads out of the worktree (through a symbolic link)",
                      "commit only files inside the worktree")


def commit_paths(worktree: str, paths, message: str, author: str | None = None) -> str | None:
    """Stage exactly `paths` (changes, new files, deletions) in an Amelia worktree and
    commit them: the new commit's sha, or None when nothing changed (no empty commits)."""
    wt = _amelia_worktree(worktree)
    if not isinstance(message, str) or not message.strip() or "\0" in message:
        raise BadName("the commit message is empty" if isinstance(message, str) and "\0" not in message
                      else "the commit message is not text", "give the target a `commit:` message")
    if len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
        raise BadName(f"the commit message is longer than {MAX_MESSAGE} bytes", "shorten it")
    paths = list(paths)
    for p in paths:
        _check("path", p, path_problem)
        _confined(wt, p)
    env = _identity(wt, author)
    _git(wt, "reset", "--quiet")  # only these paths: drop anything staged before
    present = [p for p in paths if os.path.lexists(os.path.join(wt, p))]
    gone = [p for p in paths if p not in present]
    if gone:  # a deleted path counts only when git knew it
        _, out, _ = _git(wt, "--literal-pathspecs", "ls-files", "-z", "--cached", "--", *gone)
        known = [f for f in out.split("\0") if f]
        present += [p for p in gone
                    if any(f == p.rstrip("/") or f.startswith(p.rstrip("/") + "/") for f in known)]
    if not present:
        return None
    # --force: a declared output is committed even when the repository's .gitignore skips it
    _git(wt, "--literal-pathspecs", "add", "--all", "--force", "--", *present)
    status, _, _ = _git(wt, "diff", "--cached", "--quiet", check=False)
    if status == 0:
        return None
    _git(wt, "commit", "--quiet", "--no-verify", "--cleanup=whitespace", f"--message={message}",
         env=env)
    return _sha(wt, "HEAD")


def push(worktree: str, remote: str, branch: str) -> None:
    """Push the branch to the remote (only when the target asks: `push: REMOTE`)."""
    wt = _amelia_worktree(worktree)
    _check("remote", remote, remote_problem)
    _check("branch", branch, ref_problem)
    _, out, _ = _git(wt, "remote")
    if remote not in out.split():
        raise GitProblem(f"the repository has no remote '{remote}'",
                         f"add it (`git remote add {remote} URL`) or fix the target's `push:`")
    status, _, err = _git(wt, "push", "--quiet", "--end-of-options", remote,
                          f"refs/heads/{branch}:refs/heads/{branch}", check=False)
    if status != 0:
        raise GitProblem(f"pushing '{branch}' to '{remote}' failed: {_last_line(err)}",
                         "push by hand to see git's full message")


def changed_files(worktree: str, since: str | None = None) -> list:
    """What changed in a worktree (modified, added, deleted, untracked; relative paths,
    ignored files left out): against its HEAD, or against commit `since` when given (so
    commits an agent made itself count too)."""
    wt = _amelia_worktree(worktree)
    _, out, _ = _git(wt, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    found = {entry[3:] for entry in out.split("\0") if len(entry) > 3}
    if since is not None:
        _check("commit", since, base_problem)
        _, out, _ = _git(wt, "diff", "--name-only", "-z", "--no-renames", "--end-of-options",
                         since, "--")
        found |= {f for f in out.split("\0") if f}
    return sorted(found)


# ---------------------------------------------------------------------------- tags and branches

_COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,64}")


def branch_head(repo: str, branch: str) -> tuple | None:
    """(sha, subject, commit time) of a local branch's last commit; None when there is no
    such branch (or its name is not one). Reads only."""
    if ref_problem(branch):
        return None
    status, out, _ = _git(_root(repo), "log", "-1", "--format=%H%x00%ct%x00%s",
                          "--end-of-options", f"refs/heads/{branch}", "--", check=False)
    if status != 0 or out.count("\0") < 2:
        return None
    sha, when, subject = out.split("\0", 2)
    return sha, subject.strip(), int(when)


def checkout_status(top: str) -> list:
    """The paths `git status` lists in a work tree (the user's checkout too): modified,
    added, deleted, untracked; ignored files left out. Reads only: GIT_OPTIONAL_LOCKS=0,
    so git does not even refresh the index."""
    _, out, _ = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                     "--no-renames", "--ignore-submodules=all", env={"GIT_OPTIONAL_LOCKS": "0"})
    return sorted({entry[3:] for entry in out.split("\0") if len(entry) > 3})


def head_sha(worktree_or_repo: str) -> str:
    """The commit HEAD names in a work tree (the user's checkout or one of Amelia's
    worktrees): a full sha. Reads only; nothing changes."""
    root = _root(worktree_or_repo)
    sha = _sha(root, "HEAD")
    if not sha:
        raise MissingBase(f"the repository at {root} has no commit yet",
                          "commit once: a tag or a branch names a commit")
    return sha


def _commit_of(root: str, sha: str) -> str:
    """`sha` checked (hex only: never a name or an option) and expanded to a full commit id."""
    if not isinstance(sha, str) or not _COMMIT_ID.fullmatch(sha):
        raise BadName(f"commit {sha!r} is not a commit id", "give a hexadecimal commit id")
    full = _sha(root, sha)
    if not full:
        raise MissingBase(f"commit {sha} is not in this repository", "give a commit of this repository")
    return full


def _existing(root: str, ref: str) -> tuple:
    """(exists, commit it names or None): a tag may name a tree or a blob, not a commit."""
    status, _, _ = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", ref,
                        check=False)
    return status == 0, (_sha(root, ref) if status == 0 else None)


def _message_problem(message) -> str | None:
    if not isinstance(message, str) or "\0" in message:
        return "is not text"
    if not message.strip():
        return "is empty"
    if len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
        return f"is longer than {MAX_MESSAGE} bytes"
    return None


def create_tag(repo: str, name: str, sha: str, message: str | None = None) -> bool:
    """Tag commit `sha` as `name`: annotated with `message`, else lightweight. True when it
    was made, False when the tag already names that commit (nothing to do). A tag at
    another commit is a GitProblem: tags do not move."""
    _check("tag", name, ref_problem)
    if message is not None:
        problem = _message_problem(message)
        if problem:
            raise BadName(f"the tag's message {problem}", "give the tag a short `message:`")
    root = _root(repo)
    full = _commit_of(root, sha)
    there, at = _existing(root, "refs/tags/" + name)
    if there:
        if at == full:
            return False
        raise GitProblem(f"tag '{name}' already exists at {(at or 'a non-commit object')[:12]}, "
                         f"not at {full[:12]}",
                         f"tags do not move: give a new name (e.g. from a param), or delete the "
                         f"old tag yourself (`git tag -d {name}`) if it was a mistake")
    args = ["tag", "--no-sign"]
    env = None
    if message is not None:
        # the tagger is the committer identity: the fallback fills in what is not configured
        env = _identity(root, None)
        args += ["--annotate", "--cleanup=whitespace", f"--message={message}"]
    _git(root, *args, "--end-of-options", name, full, env=env)
    return True


def create_branch(repo: str, name: str, sha: str) -> bool:
    """Make branch `name` at commit `sha` (no upstream, nothing checked out). True when it
    was made, False when it already names that commit. A branch at another commit is a
    GitProblem: Amelia never moves a branch (least of all one checked out somewhere)."""
    _check("branch", name, ref_problem)
    root = _root(repo)
    full = _commit_of(root, sha)
    there, at = _existing(root, "refs/heads/" + name)
    if there:
        if at == full:
            return False
        where = next((e["path"] for e in _listing(root) if e["branch"] == name), None)
        if where:
            raise BranchInUse(f"branch '{name}' is checked out at {where} and is at {at[:12]}, "
                              f"not at {full[:12]}",
                              "Amelia never moves a checked-out branch: give the step another "
                              "branch name")
        raise GitProblem(f"branch '{name}' already exists at {(at or '?')[:12]}, not at {full[:12]}",
                         f"Amelia never moves a branch: give another name, or move it yourself "
                         f"(`git branch -f {name} {full[:12]}`)")
    _git(root, "branch", "--no-track", "--end-of-options", name, full)
    return True
