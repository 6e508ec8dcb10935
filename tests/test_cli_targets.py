"""`amelia targets` and `amelia targets prune` on real temporary repositories: what they
list, what prune removes (never a branch, never the user's checkout), the lock."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitrepo import git

from conftest import assert_golden

GOLDEN = Path(__file__).resolve().parent / "golden" / "targets"

PIPE = """\
amelia: 1
name: t
targets:
  docs:
    branch: amelia/docs
    base: main
    push: origin
  site:
    branch: amelia/site
steps:
  a:
    run: echo hi
"""




def checkout(repo: Path) -> tuple:
    """The user's side of the repository: what no targets command may change."""
    return (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD"),
            git(repo, "symbolic-ref", "HEAD"), git(repo, "ls-files", "-s"))


@pytest.fixture
def repo(project, monkeypatch):
    """A project that is a git repository with one commit and an uncommitted edit."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "User")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "user@example.com")
    for v in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(v, raising=False)
    git(project.root, "init", "-q", "-b", "main")
    project.pipeline(PIPE)
    project.write("README.md", "hello\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "init")
    project.write("README.md", "edited, not committed\n")
    return project


def worktrees(project, *names, scratch=()):
    """Amelia's worktrees, made as a run makes them (the library, not the CLI under test)."""
    from amelia.git.worktrees import ensure_worktree, scratch_worktree
    from amelia.store import Store

    Store(str(project.root)).close()  # a run makes the store (and its .gitignore) first
    store = str(project.root / ".amelia")
    for name in names:
        ensure_worktree(str(project.root), name, f"amelia/{name}", "main", store)
    for step in scratch:
        scratch_worktree(str(project.root), store, step)


def normalized(text: str) -> str:
    """Commit ids and ages change from run to run."""
    return re.sub(r"\b[0-9a-f]{7} \d+[smhd] ago\b", "<sha> <age>", text)


def test_targets_lists_declared_stale_and_scratch(repo):
    worktrees(repo, "docs", "old", scratch=["fix[a]"])
    before = checkout(repo.root)
    r = repo.run("targets", check=0)
    assert_golden(normalized(r.stdout), GOLDEN / "list.txt")
    assert checkout(repo.root) == before
    head = git(repo.root, "rev-parse", "--short=7", "main").strip()
    assert f"{head} " in r.stdout.splitlines()[1]  # docs: its branch's last commit


def test_targets_json(repo):
    worktrees(repo, "docs", "old", scratch=["fix[a]"])
    doc = json.loads(repo.run("targets", "--json", check=0).stdout)
    assert [(t["name"], t["state"], t["exists"]) for t in doc["targets"]] == \
        [("docs", "ready", True), ("site", "not made", False)]
    docs = doc["targets"][0]
    assert docs["branch"] == "amelia/docs" and docs["base"] == "main" and docs["push"] == "origin"
    assert docs["worktree"] == ".amelia/worktrees/docs"
    assert docs["last_commit"]["sha"] == git(repo.root, "rev-parse", "main").strip()
    assert docs["last_commit"]["subject"] == "init"
    assert doc["targets"][1]["last_commit"] is None
    assert [(o["name"], o["state"], o["branch"]) for o in doc["other"]] == \
        [("old", "stale", "amelia/old"), (doc["other"][1]["name"], "scratch", None)]
    assert doc["other"][1]["worktree"].startswith(".amelia/worktrees/.scratch/fix_a_-")


def test_targets_with_nothing_declared_nor_made(repo):
    repo.pipeline("amelia: 1\nname: t\nsteps:\n  a:\n    run: echo hi\n")
    r = repo.run("targets", check=0)
    assert r.stdout == "no targets in amelia.yaml and no worktrees of Amelia's\n"


def test_targets_outside_a_repository(project):
    project.pipeline(PIPE)
    for args in (("targets",), ("targets", "prune")):
        r = project.run(*args)
        assert r.returncode == 4, r.stderr
        assert f"error: {project.root} is not in a git repository" in r.stderr
        assert "hint: git targets need one: run `git init`" in r.stderr
        assert "Traceback" not in r.stderr
    assert not project.exists(".amelia")


def test_targets_bad_usage(repo):
    r = repo.run("targets", "amelia.yaml", "extra")
    assert r.returncode == 2 and "error: unexpected argument 'extra'" in r.stderr
    r = repo.run("targets", "--wait")
    assert r.returncode == 2 and "--wait goes with `targets prune`" in r.stderr
    r = repo.run("targets", "missing.yaml")
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_prune_removes_stale_scratch_and_deleted_keeps_branches(repo):
    worktrees(repo, "docs", "site", "old", scratch=["fix[a]"])
    shutil.rmtree(repo.root / ".amelia/worktrees/site")  # deleted by hand
    before = checkout(repo.root)
    listing = repo.run("targets", check=0).stdout
    assert re.search(r"^site .* deleted ", listing, re.M)
    assert "amelia: 3 worktrees not in use" in listing
    r = repo.run("targets", "prune", check=0)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["removed .amelia/worktrees/old (no target 'old' is declared)",
                         "removed .amelia/worktrees/site (its folder was deleted)"]
    assert re.fullmatch(r"removed \.amelia/worktrees/\.scratch/fix_a_-\w+ \(scratch\)", lines[2])
    assert lines[3] == "amelia: removed 3 worktrees; branches are kept: amelia/old, amelia/site"
    assert len(lines) == 4
    assert (repo.root / ".amelia/worktrees/docs/README.md").read_text() == "hello\n"
    assert not (repo.root / ".amelia/worktrees/old").exists()
    assert not list((repo.root / ".amelia/worktrees/.scratch").iterdir())
    for branch in ("amelia/old", "amelia/site", "amelia/docs"):
        git(repo.root, "rev-parse", "--verify", f"refs/heads/{branch}")  # still there
    assert checkout(repo.root) == before
    assert "/.amelia/worktrees/" not in git(repo.root, "worktree", "list").replace(
        str(repo.root.resolve()) + "/.amelia/worktrees/docs", "")
    again = repo.run("targets", "prune", "--json", check=0)
    assert json.loads(again.stdout) == {"removed": [], "branches_kept": []}
    listing = repo.run("targets", check=0).stdout
    # its worktree is gone, its branch (kept) still shows its last commit
    assert re.search(r"^site .* not made  [0-9a-f]{7} .* init$", listing, re.M) and "not in use" not in listing


def test_prune_json(repo):
    worktrees(repo, "old")
    doc = json.loads(repo.run("targets", "prune", "amelia.yaml", "--json", check=0).stdout)
    assert doc == {"removed": [{"name": "old", "worktree": ".amelia/worktrees/old",
                                "branch": "amelia/old", "why": "no target 'old' is declared"}],
                   "branches_kept": ["amelia/old"]}


def test_prune_takes_the_project_lock(repo):
    from amelia.store import ProjectLock

    worktrees(repo, "old")
    lock = ProjectLock(str(repo.root / ".amelia" / "lock"))
    lock.acquire()
    try:
        r = repo.run("targets", "prune")
        assert r.returncode == 4 and "another amelia process" in r.stderr
        assert "--wait" in r.stderr
        assert (repo.root / ".amelia/worktrees/old").is_dir()  # nothing removed
        threading.Timer(1.0, lock.release).start()
        t0 = time.monotonic()
        r = repo.run("targets", "prune", "--wait", check=0)
        assert time.monotonic() - t0 >= 0.9
    finally:
        lock.release()
    assert "removed .amelia/worktrees/old" in r.stdout
    assert not (repo.root / ".amelia/worktrees/old").exists()


def test_a_target_whose_branch_exists_without_its_worktree_shows_its_last_commit(tmp_path, monkeypatch):
    from amelia.git.worktrees import branch_head

    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "r"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=U", "-c", "user.email=u@x", "commit",
                                                 "-q", "--allow-empty", "-m", "first"], ["branch", "out"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    sha, subject, when = branch_head(str(repo), "out")
    assert len(sha) == 40 and subject == "first" and when > 0
    assert branch_head(str(repo), "missing") is None and branch_head(str(repo), "-x") is None
