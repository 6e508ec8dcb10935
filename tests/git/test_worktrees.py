"""Worktrees, commits and pushes on real temporary repositories; the user's checkout is
checked untouched (status, HEAD, branch, index, stash) after every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amelia.git import BadName, BranchInUse, GitProblem, MissingBase
from amelia.git.worktrees import (changed_files, commit_paths, discard_scratch, ensure_worktree,
                                  list_worktrees, prune, push, repo_root, scratch_worktree)

from gitrepo import USER, git as sh, isolate, plant_hooks
from gitrepo import snapshot as checkout


def snapshot(repo: Path) -> dict:
    return {**checkout(repo), "readme": (repo / "README.md").read_text()}


@pytest.fixture
def user_repo(tmp_path, monkeypatch):
    """A user's repository mid-work: a stash, a staged change, an edit, an untracked file,
    and hooks that would leave a mark if they ran."""
    isolate(monkeypatch)
    repo = tmp_path / "project"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    (repo / "notes.txt").write_text("one\n")
    sh(repo, "add", "-A")
    sh(repo, *USER, "commit", "-q", "-m", "init")
    sh(repo, "tag", "v1")
    (repo / "README.md").write_text("stashed\n")
    sh(repo, *USER, "stash", "-q")
    (repo / "notes.txt").write_text("staged\n")
    sh(repo, "add", "notes.txt")
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "untracked.txt").write_text("mine\n")
    marks = tmp_path / "hook-ran"
    plant_hooks(repo, marks, ("pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-push"))
    before = snapshot(repo)
    yield repo
    assert snapshot(repo) == before, "the user's checkout changed"
    assert not marks.exists(), f"a hook of the user's repo ran: {marks.read_text()}"


@pytest.fixture
def store(user_repo):
    return str(user_repo / ".amelia")


def log(cwd, rev="HEAD") -> list:
    return sh(cwd, "log", "--format=%s", rev).splitlines()


def test_repo_root(user_repo, tmp_path):
    (user_repo / "sub").mkdir()
    assert repo_root(str(user_repo / "sub")) == str(user_repo.resolve())
    assert repo_root(str(user_repo / "README.md")) == str(user_repo.resolve())
    outside = tmp_path / "plain"
    outside.mkdir()
    assert repo_root(str(outside)) is None
    assert repo_root(str(tmp_path / "missing" / "x")) is None


def test_target_commits_land_on_the_branch(user_repo, store):
    wt = ensure_worktree(str(user_repo), "docs", "amelia/docs", "main", store)
    assert wt == str((user_repo / ".amelia" / "worktrees" / "docs").resolve())
    assert sh(wt, "symbolic-ref", "HEAD").strip() == "refs/heads/amelia/docs"
    assert (Path(wt) / "README.md").read_text() == "hello\n"  # the commit, not the user's edits
    (Path(wt) / "out").mkdir()
    (Path(wt) / "out" / "a.md").write_text("generated\n")
    (Path(wt) / "other.txt").write_text("not an output\n")
    sha = commit_paths(wt, ["out/"], "docs: regenerate")
    assert sha and sh(user_repo, "rev-parse", "amelia/docs").strip() == sha
    assert sh(user_repo, "show", "--name-only", "--format=", sha).split() == ["out/a.md"]
    assert log(user_repo, "amelia/docs") == ["docs: regenerate", "init"]
    # fallback identity: HOME has no git config
    assert sh(user_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha).strip() == \
        "amelia <amelia@localhost>|amelia <amelia@localhost>"


def test_no_change_no_commit(user_repo, store):
    wt = ensure_worktree(str(user_repo), "docs", "out", "main", store)
    assert commit_paths(wt, ["README.md", "never-written.txt"], "nothing") is None
    assert commit_paths(wt, [], "nothing") is None
    (Path(wt) / "a.txt").write_text("x\n")
    first = commit_paths(wt, ["a.txt"], "one")
    assert first
    assert commit_paths(wt, ["a.txt"], "again") is None
    assert log(wt) == ["one", "init"]


def test_deletions_and_author(user_repo, store):
    wt = ensure_worktree(str(user_repo), "t", "del", "v1", store)
    os.remove(Path(wt) / "notes.txt")
    sha = commit_paths(wt, ["notes.txt"], "remove notes", author="Jane Doe <jane@example.com>")
    assert sh(wt, "show", "--name-status", "--format=%an <%ae>", sha).split() == \
        ["Jane", "Doe", "<jane@example.com>", "D", "notes.txt"]
    for bad in ("Jane", "<j@x>", "Jane <j@x> extra", "Jane\n <j@x>", "Jane <a b@x>"):
        with pytest.raises(BadName):
            commit_paths(wt, ["notes.txt"], "x", author=bad)


def test_configured_identity_is_used(user_repo, store, tmp_path):
    Path(os.environ["HOME"], ".gitconfig").write_text("[user]\n\tname = Conf\n\temail = c@x.org\n")
    wt = ensure_worktree(str(user_repo), "t", "ident", "main", store)
    (Path(wt) / "a").write_text("1")
    sha = commit_paths(wt, ["a"], "m")
    assert sh(wt, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha).strip() == \
        "Conf <c@x.org>|Conf <c@x.org>"


def test_hostile_names_create_nothing(user_repo, store, tmp_path):
    branches = sh(user_repo, "branch", "--list")
    for name in ("--upload-pack=touch x", "-b", "a..b", "../../.git/hooks/x", "a\nb"):
        with pytest.raises(BadName):
            ensure_worktree(str(user_repo), "t", name, "main", store)
        with pytest.raises(BadName):
            ensure_worktree(str(user_repo), "t", "ok", name, store)
        with pytest.raises(BadName):
            ensure_worktree(str(user_repo), name, "ok", "main", store)
    assert sh(user_repo, "branch", "--list") == branches
    assert not (user_repo / "x").exists() and not (tmp_path / "x").exists()
    assert not (user_repo / ".git" / "hooks" / "x").exists()
    assert list_worktrees(str(user_repo), store) == []


def test_reused_and_recreated_when_deleted(user_repo, store):
    import shutil

    wt = ensure_worktree(str(user_repo), "docs", "d", "main", store)
    (Path(wt) / "a").write_text("1")
    commit_paths(wt, ["a"], "first")
    assert ensure_worktree(str(user_repo), "docs", "d", "main", store) == wt
    shutil.rmtree(wt)
    assert ensure_worktree(str(user_repo), "docs", "d", "main", store) == wt
    assert (Path(wt) / "a").read_text() == "1"  # the branch kept its commit
    assert log(wt) == ["first", "init"]


def test_branch_checked_out_by_the_user_is_refused(user_repo, store):
    with pytest.raises(BranchInUse) as e:
        ensure_worktree(str(user_repo), "t", "main", "main", store)
    assert "your work tree" in e.value.message and e.value.hint
    ensure_worktree(str(user_repo), "a", "shared", "main", store)
    with pytest.raises(BranchInUse):
        ensure_worktree(str(user_repo), "b", "shared", "main", store)


def test_missing_base_is_refused(user_repo, store):
    with pytest.raises(MissingBase) as e:
        ensure_worktree(str(user_repo), "t", "new", "no-such-branch", store)
    assert "no-such-branch" in e.value.message
    assert "new" not in sh(user_repo, "branch", "--list").split()


def test_branch_change_replaces_a_clean_worktree_only(user_repo, store):
    wt = ensure_worktree(str(user_repo), "t", "one", "main", store)
    assert ensure_worktree(str(user_repo), "t", "two", "main", store) == wt
    assert sh(wt, "symbolic-ref", "HEAD").strip() == "refs/heads/two"
    (Path(wt) / "dirty").write_text("x")
    with pytest.raises(GitProblem):
        ensure_worktree(str(user_repo), "t", "three", "main", store)


def test_paths_are_confined(user_repo, store, tmp_path):
    wt = ensure_worktree(str(user_repo), "t", "conf", "main", store)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", Path(wt) / "link")
    for bad in ("../x", "/etc/passwd", ".git/config", "link/secret"):
        with pytest.raises(BadName):
            commit_paths(wt, [bad], "m")
    with pytest.raises(GitProblem):  # never in the user's own checkout
        commit_paths(str(user_repo), ["README.md"], "m")


def test_push_only_when_asked(user_repo, store, tmp_path):
    remote = tmp_path / "remote.git"
    sh(tmp_path, "init", "-q", "--bare", str(remote))
    config = (user_repo / ".git" / "config").read_text()
    (user_repo / ".git" / "config").write_text(config + f'[remote "origin"]\n\turl = file://{remote}\n')
    wt = ensure_worktree(str(user_repo), "t", "pushed", "main", store)
    (Path(wt) / "a").write_text("1")
    sha = commit_paths(wt, ["a"], "m")
    assert sh(remote, "branch", "--list") == ""
    push(wt, "origin", "pushed")
    assert sh(remote, "rev-parse", "pushed").strip() == sha
    with pytest.raises(BadName):
        push(wt, "--upload-pack=touch x", "pushed")
    with pytest.raises(GitProblem):
        push(wt, "nowhere", "pushed")


def test_scratch_worktree_collects_changes(user_repo, store):
    wt = scratch_worktree(str(user_repo), store, "fix[a:b]")
    assert sh(wt, "rev-parse", "HEAD") == sh(user_repo, "rev-parse", "HEAD")
    (Path(wt) / "README.md").write_text("agent edit\n")
    (Path(wt) / "new").mkdir()
    (Path(wt) / "new" / "feature.py").write_text("x = 1\n")
    os.remove(Path(wt) / "notes.txt")
    assert changed_files(wt) == ["README.md", "new/feature.py", "notes.txt"]
    start = sh(wt, "rev-parse", "HEAD").strip()
    sh(wt, *USER, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-am", "agent commit")
    assert changed_files(wt) == ["new/feature.py"]
    assert changed_files(wt, since=start) == ["README.md", "new/feature.py", "notes.txt"]
    assert [w.scratch for w in list_worktrees(str(user_repo), store)] == [True]
    again = scratch_worktree(str(user_repo), store, "fix[a:b]")  # fresh each time
    assert again == wt and changed_files(wt) == []
    discard_scratch(str(user_repo), store, "fix[a:b]")
    assert not os.path.exists(wt) and list_worktrees(str(user_repo), store) == []


def test_list_and_prune(user_repo, store):
    import shutil

    a = ensure_worktree(str(user_repo), "a", "ba", "main", store)
    b = ensure_worktree(str(user_repo), "b", "bb", "main", store)
    ensure_worktree(str(user_repo), "c", "bc", "main", store)
    scratch_worktree(str(user_repo), store, "s")
    (Path(a) / "f").write_text("1")
    sha = commit_paths(a, ["f"], "subject line")
    listed = list_worktrees(str(user_repo), store)
    assert [(w.name, w.branch, w.scratch) for w in listed][:3] == [("a", "ba", False), ("b", "bb", False),
                                                                   ("c", "bc", False)]
    assert (listed[0].sha, listed[0].subject) == (sha, "subject line") and listed[0].time > 0
    shutil.rmtree(b)
    assert [w.exists for w in list_worktrees(str(user_repo), store)][:2] == [True, False]
    removed = prune(str(user_repo), store, declared=["a", "b"])
    assert sorted(removed)[:2] == ["b", "c"] and len(removed) == 3
    assert [r for r in removed if r not in ("b", "c")][0].startswith("s-")  # the scratch one
    assert [w.name for w in list_worktrees(str(user_repo), store)] == ["a"]
    assert {"ba", "bb", "bc"} <= set(sh(user_repo, "branch", "--format=%(refname:short)").split())


def test_user_hook_environment_does_not_leak(user_repo, store, monkeypatch):
    """Run from the user's pre-commit hook, GIT_DIR and GIT_INDEX_FILE point at the user's
    repository: Amelia's commit must still go to its worktree and index only."""
    monkeypatch.setenv("GIT_DIR", str(user_repo / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(user_repo / ".git" / "index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(user_repo))
    wt = ensure_worktree(str(user_repo), "t", "hooked", "main", store)
    (Path(wt) / "a").write_text("1")
    sha = commit_paths(wt, ["a"], "from a hook")
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert sh(user_repo, "rev-parse", "hooked").strip() == sha


def test_not_a_repository(tmp_path):
    from amelia.git import NotARepository

    with pytest.raises(NotARepository):
        ensure_worktree(str(tmp_path), "t", "b", "main", str(tmp_path / ".amelia"))
