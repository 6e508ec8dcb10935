"""Git targets (DESIGN §7): branches and worktrees under .amelia/worktrees/, commits there.

`refs` checks names (pure); `worktrees` drives git through GitPython. Not wired into the
pipeline yet: see docs/git-targets.md. The user's own checkout is never touched.

The errors carry a message and a hint, no location: callers give them one (a located
error at validate, a step failure at run time, an AmeliaError in the CLI).
"""

from __future__ import annotations


class GitProblem(Exception):
    """Something git or the repository refuses; the message says what, the hint what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadName(GitProblem):
    """A branch, base, remote, target name or path that fails validation."""


class NotARepository(GitProblem):
    """The project is not inside a git work tree."""


class BranchInUse(GitProblem):
    """The target's branch is checked out elsewhere (the user's checkout, another worktree)."""


class MissingBase(GitProblem):
    """The base a new branch starts from does not name a commit."""


__all__ = ["GitProblem", "BadName", "NotARepository", "BranchInUse", "MissingBase"]
