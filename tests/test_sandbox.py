"""Coding agents work in a worktree, never in the user's checkout (issue 14, item 2).

End to end through `python -m amelia run`, with a stand-in `claude` CLI (CLAUDE_CODE_PATH)
that edits README.md, creates feature.py, deletes old.txt and appends to draft.md when it
is there (an uncommitted file of the user's). The user's repository is real, mid-work (a
staged change, an unstaged edit, an untracked file, hooks that leave a mark), and it is
checked byte for byte after every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STAND_IN = r'''#!{python}
import json, os, sys
log = os.environ["FAKE_CLAUDE_LOG"]
with open(log, "w") as f:
    json.dump({{"cwd": os.getcwd(), "args": sys.argv[1:]}}, f)
mode = os.environ.get("FAKE_CLAUDE_MODE", "edit")
with open("README.md", "a") as f:
    f.write("agent line\n")
with open("feature.py", "w") as f:
    f.write("print('feature')\n")
if os.path.exists("old.txt"):
    os.remove("old.txt")
if os.path.exists("draft.md"):
    with open("draft.md", "a") as f:
        f.write("seen by the agent\n")
if mode == "fail":
    print("API Error: something broke", file=sys.stderr)
    sys.exit(1)
if mode == "hostile":
    os.symlink("/etc/passwd", "leak")
    with open("-rf", "w") as f:
        f.write("x\n")
print(json.dumps({{"type": "result", "is_error": False, "result": "done", "usage": {{}}}}))
'''

PIPELINE = """\
amelia: 1
models:
  coder: {provider: claude-code, retries: 0}
steps:
  edit:
    agent: {model: coder}
    prompt: Improve the project.
    output: build/edit.md
"""

from gitrepo import git, isolate, plant_hooks, snapshot

HOOKS = ("pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-push")


def files(root: Path) -> dict:
    """Every file of the checkout (not .git, not the store, not build/) with its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in (".git", ".amelia", "build") or p.is_dir():
            continue
        out[rel] = os.readlink(p) if p.is_symlink() else p.read_bytes()
    return out


def state(root: Path) -> dict:
    return {**snapshot(root), "files": files(root)}


@pytest.fixture
def repo(project, tmp_path, monkeypatch):
    """The project is a user's repository mid-work; checked unchanged after the test."""
    isolate(monkeypatch, identity=False)
    root = project.root
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "User")
    git(root, "config", "user.email", "user@example.com")
    project.write(".gitignore", "build/\n")
    project.write("README.md", "hello\n")
    project.write("old.txt", "old\n")
    project.write("notes.txt", "one\n")
    project.pipeline(PIPELINE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    project.write("notes.txt", "staged\n")
    git(root, "add", "notes.txt")
    project.write("README.md", "hello\nmy edit, not staged\n")
    project.write("draft.md", "my draft\n")  # untracked
    marks = tmp_path / "hook-ran"
    plant_hooks(root, marks, HOOKS)
    before = state(root)
    yield project
    assert state(root) == before, "the user's checkout changed"
    assert not marks.exists(), f"a hook of the user's repository ran: {marks.read_text()}"


@pytest.fixture
def claude(tmp_path):
    exe = tmp_path / "bin" / "claude"
    exe.parent.mkdir()
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "claude-call.json"

    def env(mode="edit"):
        return {"CLAUDE_CODE_PATH": str(exe), "FAKE_CLAUDE_LOG": str(log),
                "FAKE_CLAUDE_MODE": mode, "GIT_CONFIG_NOSYSTEM": "1"}

    env.call = lambda: json.loads(log.read_text())
    env.called = log.exists
    return env


def changes(project, step="edit") -> tuple:
    where = project.root / ".amelia" / "changes" / step
    record = json.loads((where / "changes.json").read_text())
    kept = {p.relative_to(where / "files").as_posix(): p.read_text()
            for p in sorted((where / "files").rglob("*")) if p.is_file()} \
        if (where / "files").is_dir() else {}
    return record, kept


def no_scratch(root: Path) -> None:
    scratch = root / ".amelia" / "worktrees" / ".scratch"
    assert not scratch.exists() or not any(scratch.iterdir()), "a scratch worktree was left"
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_agent_edits_a_scratch_worktree_and_its_changes_become_outputs(repo, claude):
    head = git(repo.root, "rev-parse", "HEAD").strip()
    r = repo.run("run", env=claude(), check=0)
    assert "1 ran" in r.stdout
    assert repo.read("build/edit.md") == "done\n"  # the answer, as before
    call = claude.call()
    scratch = repo.root / ".amelia" / "worktrees" / ".scratch"
    assert call["cwd"].startswith(str(scratch) + os.sep)
    assert "acceptEdits" in call["args"]  # in its worktree, where edits are accepted
    record, kept = changes(repo)
    # measured against the user's tree as it is (their unstaged edit and untracked draft)
    assert kept == {"README.md": "hello\nmy edit, not staged\nagent line\n",
                    "draft.md": "my draft\nseen by the agent\n",
                    "feature.py": "print('feature')\n"}
    assert record["changed"] == ["README.md", "draft.md", "feature.py"]
    assert record == {"base": record["base"], "changed": ["README.md", "draft.md", "feature.py"],
                      "deleted": ["old.txt"], "target": ""}
    # the baseline holds the user's uncommitted files, on top of their HEAD
    assert git(repo.root, "rev-parse", record["base"] + "^").strip() == head
    no_scratch(repo.root)
    assert "feature.py" not in files(repo.root)


def test_a_failed_call_leaves_no_worktree_and_records_nothing(repo, claude):
    r = repo.run("run", env=claude("fail"), check=1)
    assert "claude exited with status 1" in r.stdout + r.stderr
    assert claude.call()["cwd"].startswith(str(repo.root / ".amelia" / "worktrees" / ".scratch"))
    no_scratch(repo.root)
    assert not (repo.root / ".amelia" / "changes" / "edit" / "changes.json").exists()
    assert not repo.exists("build/edit.md")


def test_hostile_changes_are_refused_never_followed(repo, claude):
    r = repo.run("run", env=claude("hostile"), check=1)
    out = r.stdout + r.stderr
    assert "refuses to keep" in out and "Traceback" not in out
    assert "'leak' is a symbolic link" in out
    assert "'-rf' starts with '-'" in out
    assert "nothing of this step is kept or committed" in out
    # a failed step keeps none of its outputs: no changes dir, no answer, nothing linked
    changes_dir = repo.root / ".amelia" / "changes" / "edit"
    assert not changes_dir.exists() or not any(changes_dir.iterdir())
    assert not repo.exists("build/edit.md")
    store = repo.root / ".amelia"
    assert not any(p.is_symlink() for p in store.rglob("*"))
    no_scratch(repo.root)


def test_outside_a_git_repository_the_agent_never_runs(project, claude):
    project.pipeline(PIPELINE)
    project.write("README.md", "hello\n")
    r = project.run("run", env=claude(), check=1)
    out = r.stdout + r.stderr
    assert "needs a git repository" in out and "git init" in out
    assert not claude.called()
    assert project.read("README.md") == "hello\n" and not project.exists("feature.py")


def test_project_in_a_subfolder_of_the_repository(repo, claude):
    repo.write("app/README.md", "app\n")
    git(repo.root, "add", "app/README.md")  # staged, not committed: the agent sees it
    app = repo.root / "app"
    (app / "amelia.yaml").write_text("root: .\n" + PIPELINE)  # the project is app/
    try:
        r = subprocess.run([sys.executable, "-m", "amelia", "run"], cwd=app, capture_output=True,
                           text=True, env={**os.environ, **claude()}, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert claude.call()["cwd"].endswith(os.sep + "app")
        record = json.loads((app / ".amelia/changes/edit/changes.json").read_text())
        assert record["changed"] == ["app/README.md", "app/feature.py"]
        assert (app / ".amelia/changes/edit/files/app/README.md").read_text() == "app\nagent line\n"
        assert (app / "README.md").read_text() == "app\n"
        assert git(repo.root, "worktree", "list", "--porcelain").count("worktree ") == 1
    finally:  # the fixture checks the rest of the checkout
        import shutil

        git(repo.root, "rm", "-q", "--cached", "app/README.md")
        shutil.rmtree(app)


TARGETED = """\
amelia: 1
targets:
  work: {branch: amelia/work, commit: "agent: ${{ run.steps }}"}
models:
  coder: {provider: claude-code, retries: 0}
steps:
  gen:
    run: echo generated > gen.txt
    output: gen.txt
    target: work
  edit:
    agent: {model: coder}
    prompt: Improve the project.
    inputs: [gen.txt]
    output: answer.md
    target: work
"""


def test_with_a_target_the_edits_are_committed_on_its_branch(repo, claude):
    repo.pipeline(TARGETED)
    try:
        head = git(repo.root, "rev-parse", "HEAD").strip()
        r = repo.run("run", env=claude(), check=0)
        assert "2 ran" in r.stdout
        wt = repo.root / ".amelia" / "worktrees" / "work"
        assert claude.call()["cwd"] == str(wt) and "acceptEdits" in claude.call()["args"]
        record, kept = changes(repo)
        # gen.txt was left uncommitted by the step before: not the agent's change
        assert record["changed"] == ["README.md", "feature.py"] and record["deleted"] == ["old.txt"]
        assert record["target"] == "work" and record["base"] == head
        assert kept["README.md"] == "hello\nagent line\n"  # the branch's README, not the user's
        assert "draft.md" not in kept  # an untracked file of the user's is not on the branch
        shown = git(repo.root, "show", "--name-status", "--format=%s", "amelia/work").split("\n")
        assert shown[0] == "agent: gen, edit"
        assert sorted(ln for ln in shown[1:] if ln) == \
            ["A\tanswer.md", "A\tfeature.py", "A\tgen.txt", "D\told.txt", "M\tREADME.md"]
        assert git(wt, "status", "--porcelain") == ""
        no_scratch_left = not (repo.root / ".amelia" / "worktrees" / ".scratch").exists()
        assert no_scratch_left or not any((repo.root / ".amelia/worktrees/.scratch").iterdir())
        assert not repo.exists("feature.py") and repo.read("README.md") == "hello\nmy edit, not staged\n"
    finally:  # the fixture checks the checkout: the pipeline file as it was
        repo.pipeline(PIPELINE)
