"""Tags and branches made at a commit, and HEAD read, on real temporary repositories; the
user's checkout is checked untouched (status, HEAD, branch, index, stash) after every test
and none of their hooks runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from amelia.git import BadName, BranchInUse, GitProblem, MissingBase, NotARepository
from amelia.git.worktrees import (commit_paths, create_branch, create_tag, ensure_worktree,
                                  head_sha)

from gitrepo import USER, git as sh, isolate, plant_hooks, snapshot

HOSTILE = ("--upload-pack=touch x", "-b", "a..b", "../../.git/hooks/x", "a\nb", "HEAD", "x.lock")


@pytest.fixture
def user_repo(tmp_path, monkeypatch):
    """A user's repository mid-work (a stash, a staged change, an edit, an untracked file)
    with hooks that leave a mark if they run."""
    isolate(monkeypatch)
    repo = tmp_path / "project"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    sh(repo, "add", "-A")
    sh(repo, *USER, "commit", "-q", "-m", "init")
    (repo / "README.md").write_text("second\n")
    sh(repo, *USER, "commit", "-q", "-am", "second")
    (repo / "README.md").write_text("stashed\n")
    sh(repo, *USER, "stash", "-q")
    (repo / "staged.txt").write_text("staged\n")
    sh(repo, "add", "staged.txt")
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "untracked.txt").write_text("mine\n")
    marks = tmp_path / "hook-ran"
    plant_hooks(repo, marks, ("pre-commit", "commit-msg", "post-commit", "post-checkout", "reference-transaction"))
    before = snapshot(repo)
    yield repo
    assert snapshot(repo) == before, "the user's checkout changed"
    assert not marks.exists(), f"a hook of the user's repo ran: {marks.read_text()}"


def rev(repo, ref) -> str:
    return sh(repo, "rev-parse", "--verify", ref + "^{commit}").strip()


def test_head_sha(user_repo, tmp_path):
    assert head_sha(str(user_repo)) == rev(user_repo, "HEAD")
    (user_repo / "sub").mkdir()
    assert head_sha(str(user_repo / "sub")) == rev(user_repo, "HEAD")
    wt = ensure_worktree(str(user_repo), "docs", "amelia/docs", "HEAD~1", str(user_repo / ".amelia"))
    assert head_sha(wt) == rev(user_repo, "HEAD~1")  # the worktree's own HEAD, not the user's
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository):
        head_sha(str(plain))
    empty = tmp_path / "empty"
    empty.mkdir()
    sh(empty, "init", "-q")
    with pytest.raises(MissingBase) as e:
        head_sha(str(empty))
    assert e.value.hint


def test_lightweight_tag_is_idempotent_and_never_moves(user_repo):
    head, first = rev(user_repo, "HEAD"), rev(user_repo, "HEAD~1")
    assert create_tag(str(user_repo), "v1", head) is True
    assert sh(user_repo, "cat-file", "-t", "v1").strip() == "commit"  # lightweight
    assert rev(user_repo, "v1") == head
    assert create_tag(str(user_repo), "v1", head[:7]) is False  # already there: nothing to do
    with pytest.raises(GitProblem) as e:
        create_tag(str(user_repo), "v1", first)
    assert "already exists" in e.value.message and "do not move" in e.value.hint
    assert rev(user_repo, "v1") == head


def test_annotated_tag(user_repo):
    head = rev(user_repo, "HEAD")
    assert create_tag(str(user_repo), "release/1.0", head, "Release 1.0\n\n# kept, not a comment\n")
    assert sh(user_repo, "cat-file", "-t", "release/1.0").strip() == "tag"
    assert rev(user_repo, "release/1.0") == head
    body = sh(user_repo, "tag", "-l", "--format=%(contents)", "release/1.0")
    assert body == "Release 1.0\n\n# kept, not a comment\n\n"
    # HOME has no git config: the fallback identity tags
    assert sh(user_repo, "tag", "-l", "--format=%(taggername) %(taggeremail)",
              "release/1.0").strip() == "amelia <amelia@localhost>"
    assert create_tag(str(user_repo), "release/1.0", head, "another message") is False
    for bad in ("", "  \n", "a\0b", "x" * (64 * 1024 + 1)):
        with pytest.raises(BadName):
            create_tag(str(user_repo), "v2", head, bad)
    assert sh(user_repo, "tag", "-l", "v2") == ""


def test_branch_is_made_without_checkout_and_never_moved(user_repo):
    head, first = rev(user_repo, "HEAD"), rev(user_repo, "HEAD~1")
    assert create_branch(str(user_repo), "release", first) is True
    assert rev(user_repo, "release") == first
    assert subprocess.run(["git", "config", "--get", "branch.release.merge"], cwd=user_repo,
                          capture_output=True).returncode == 1  # no upstream
    assert create_branch(str(user_repo), "release", first) is False
    with pytest.raises(GitProblem) as e:
        create_branch(str(user_repo), "release", head)
    assert "already exists" in e.value.message and e.value.hint
    assert rev(user_repo, "release") == first


def test_a_checked_out_branch_is_never_moved(user_repo):
    first = rev(user_repo, "HEAD~1")
    with pytest.raises(BranchInUse) as e:
        create_branch(str(user_repo), "main", first)  # the user's own branch
    assert "checked out" in e.value.message
    assert create_branch(str(user_repo), "main", rev(user_repo, "HEAD")) is False
    wt = ensure_worktree(str(user_repo), "docs", "amelia/docs", "main", str(user_repo / ".amelia"))
    (Path(wt) / "a.txt").write_text("x\n")
    sha = commit_paths(wt, ["a.txt"], "add a")
    with pytest.raises(BranchInUse):
        create_branch(str(user_repo), "amelia/docs", first)
    assert head_sha(wt) == sha and rev(user_repo, "amelia/docs") == sha


def test_tag_and_branch_from_a_worktree(user_repo):
    """Refs are shared by all worktrees: a tag made from a target's worktree is the repo's."""
    wt = ensure_worktree(str(user_repo), "docs", "amelia/docs", "main", str(user_repo / ".amelia"))
    (Path(wt) / "out.md").write_text("generated\n")
    sha = commit_paths(wt, ["out.md"], "docs")
    assert create_tag(wt, "docs-1", head_sha(wt), "docs") is True
    assert create_branch(wt, "docs-snapshot", head_sha(wt)) is True
    assert rev(user_repo, "docs-1") == sha == rev(user_repo, "docs-snapshot")


def test_hostile_names_and_commits_create_nothing(user_repo, tmp_path):
    refs = sh(user_repo, "for-each-ref")
    head = rev(user_repo, "HEAD")
    for name in HOSTILE:
        with pytest.raises(BadName):
            create_tag(str(user_repo), name, head)
        with pytest.raises(BadName):
            create_tag(str(user_repo), name, head, "m")
        with pytest.raises(BadName):
            create_branch(str(user_repo), name, head)
    for sha in ("HEAD", "main", "--upload-pack=x", "-b", head + " x", "abc"):
        with pytest.raises(BadName):
            create_tag(str(user_repo), "ok", sha)
        with pytest.raises(BadName):
            create_branch(str(user_repo), "ok", sha)
    with pytest.raises(MissingBase):
        create_tag(str(user_repo), "ok", "0" * 40)
    assert sh(user_repo, "for-each-ref") == refs
    assert not (user_repo / "x").exists() and not (tmp_path / "x").exists()
    assert not (user_repo / ".git" / "hooks" / "x").exists()


def test_outside_a_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository):
        create_tag(str(plain), "v1", "0" * 40)
    with pytest.raises(NotARepository):
        create_branch(str(plain), "b", "0" * 40)
