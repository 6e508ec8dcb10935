"""Git in tests: run it, plant hooks that leave a mark, and snapshot a user's checkout so a
test can say it is exactly as it was (status, HEAD, branch, stash, index, staged and
unstaged changes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

USER = ["-c", "user.name=User", "-c", "user.email=user@example.com"]
# Hooks a command of the user's repository would run: Amelia's git calls must run none.
HOOKS = ("pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-push", "reference-transaction")
# Variables that point git at a repository (a hook sets them): a test must not inherit them.
REPO_VARS = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE")


def git(cwd, *args, env=None) -> str:
    """`git ARGS` in cwd; its output. A failure fails the test."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env=env).stdout


def isolate(monkeypatch, identity: bool = True) -> None:
    """No system git config and no repository variables; identity: no author or committer
    from the environment either (the repository's config, or none, decides)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    names = REPO_VARS + (("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                          "GIT_COMMITTER_EMAIL", "EMAIL") if identity else ())
    for v in names:
        monkeypatch.delenv(v, raising=False)


def plant_hooks(repo: Path, marks: Path, hooks=HOOKS) -> None:
    """Hooks that append their name to `marks` when they run."""
    for hook in hooks:
        h = repo / ".git" / "hooks" / hook
        h.write_text(f"#!/bin/sh\necho {hook} >> '{marks}'\n")
        h.chmod(0o755)


def snapshot(repo: Path) -> dict:
    """The user's side of a repository: what Amelia must never change."""
    return {
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "stash": git(repo, "stash", "list"),
        "index": git(repo, "ls-files", "-s"),
        "staged": git(repo, "diff", "--cached"),
        "diff": git(repo, "diff"),
    }


def git_nohooks(cwd, *args, input=None) -> str:
    """`git ARGS` as the test's own move (setting a scene), running none of the hooks that
    watch for Amelia's."""
    return subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd, capture_output=True,
                          text=True, check=True, input=input).stdout
