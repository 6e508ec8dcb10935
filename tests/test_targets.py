"""Git targets end to end through the CLI (issue 14): a targeted step runs in its worktree,
its outputs are committed on the target's branch once per run, and the user's checkout,
index, stash, branch and hooks are never touched."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gitrepo import USER, git as sh, git_nohooks, isolate, plant_hooks
from gitrepo import snapshot as checkout


def snapshot(repo: Path) -> dict:
    return {**checkout(repo), "src": (repo / "src" / "a.py").read_text()}


@pytest.fixture
def repo(project, tmp_path, monkeypatch):
    """The user's repository mid-work (a stash, a staged change, an unstaged edit, an
    untracked file, hooks that leave a mark); checked unchanged after each test."""
    isolate(monkeypatch, identity=False)
    root = project.root
    sh(root, "init", "-q", "-b", "main")
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("def a():\n    return 1\n")
    (root / "README.md").write_text("hello\n")
    (root / ".gitignore").write_text(".amelia/\n")
    sh(root, "add", "-A")
    sh(root, *USER, "commit", "-q", "-m", "init")
    (root / "README.md").write_text("stashed\n")
    sh(root, *USER, "stash", "-q")
    (root / "README.md").write_text("staged\n")
    sh(root, "add", "README.md")
    (root / "src" / "a.py").write_text("def a():\n    return 2  # not committed\n")
    (root / "untracked.txt").write_text("mine\n")
    marks = tmp_path / "hook-ran"
    plant_hooks(root, marks)
    project.marks = marks
    yield project
    assert not marks.exists(), f"a hook of the user's repo ran: {marks.read_text()}"


def write(project, text: str) -> None:
    (project.root / "amelia.yaml").write_text(textwrap.dedent(text))
    sh(project.root, "add", "amelia.yaml")  # part of the user's staged state from here on


DOCS = """\
    amelia: 1
    params:
      who: {default: amelia}
    targets:
      docs:
        branch: ${{ params.who }}/docs
        commit: "docs: ${{ run.steps }}"
        author: "Doc Bot <bot@example.com>"
    steps:
      api:
        target: docs
        inputs: ["src/*.py"]
        run: mkdir -p docs && grep -h def src/*.py > docs/api.md
        output: docs/api.md
    """


def branch_log(root, branch="amelia/docs") -> list:
    return sh(root, "log", "--format=%s|%an", branch).splitlines()


def test_outputs_are_committed_on_the_branch_and_the_checkout_is_untouched(repo):
    write(repo, DOCS)
    before = snapshot(repo.root)
    proc = repo.run("run", check=0)
    assert "commit  target:docs" in proc.stdout and "on amelia/docs (1 file)" in proc.stdout
    assert snapshot(repo.root) == before
    assert branch_log(repo.root) == ["docs: api|Doc Bot", "init|User"]
    # The branch's file, made from the branch's src/a.py (the committed one), not the user's edit.
    assert sh(repo.root, "show", "amelia/docs:docs/api.md") == "def a():\n"
    assert not (repo.root / "docs").exists()
    assert (repo.root / ".amelia" / "worktrees" / "docs" / "docs" / "api.md").exists()

    again = repo.run("run", check=0)  # nothing changed: no commit
    assert "commit" not in again.stdout and "0 ran, 1 cached" in again.stdout
    assert len(branch_log(repo.root)) == 2
    assert snapshot(repo.root) == before


def test_a_change_in_the_worktree_runs_the_step_and_makes_one_more_commit(repo):
    write(repo, DOCS)
    repo.run("run", check=0)
    wt = repo.root / ".amelia" / "worktrees" / "docs"
    (wt / "src" / "b.py").write_text("def b():\n    pass\n")
    proc = repo.run("run", check=0)
    assert "input src/b.py (target docs) added" in proc.stdout or "src/b.py (target docs)" in proc.stdout
    assert len(branch_log(repo.root)) == 3
    # Only the step's outputs are committed: src/b.py stays an uncommitted file of the worktree.
    assert sh(wt, "status", "--porcelain") == "?? src/b.py\n"
    assert "def b():" in sh(repo.root, "show", "amelia/docs:docs/api.md")


def test_a_worktree_deleted_by_hand_is_made_again(repo):
    write(repo, DOCS)
    repo.run("run", check=0)
    import shutil

    shutil.rmtree(repo.root / ".amelia" / "worktrees" / "docs")
    proc = repo.run("run", check=0)
    assert (repo.root / ".amelia" / "worktrees" / "docs" / "docs" / "api.md").read_text() == "def a():\n"
    assert "commit" not in proc.stdout  # the branch already holds that output
    assert len(branch_log(repo.root)) == 2


def test_json_reports_the_commit(repo):
    write(repo, DOCS)
    proc = repo.run("run", "--json", check=0)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    commits = [e for e in events if e["type"] == "target_committed"]
    assert len(commits) == 1
    c = commits[0]
    assert c["target"] == "docs" and c["branch"] == "amelia/docs" and c["files"] == ["docs/api.md"]
    assert c["commit"] == sh(repo.root, "rev-parse", "amelia/docs").strip()
    assert not c["pushed"] and not c["error"]


def test_steps_of_one_target_take_turns_and_share_one_commit(repo):
    write(repo, """\
        amelia: 1
        targets:
          site: {branch: site}
        steps:
          one:
            target: site
            run: date +%s.%N > one.start && sleep 0.4 && date +%s.%N > one.txt
            outputs: [one.start, one.txt]
          two:
            target: site
            run: date +%s.%N > two.start && sleep 0.4 && date +%s.%N > two.txt
            outputs: [two.start, two.txt]
        """)
    repo.run("run", "-j", "2", check=0)
    wt = repo.root / ".amelia" / "worktrees" / "site"
    spans = sorted((float((wt / f"{n}.start").read_text()), float((wt / f"{n}.txt").read_text()))
                   for n in ("one", "two"))
    assert spans[0][1] <= spans[1][0], f"the steps of one worktree overlapped: {spans}"
    assert branch_log(repo.root, "site") == ["amelia: one, two|User", "init|User"] or \
        len(branch_log(repo.root, "site")) == 2
    files = sh(repo.root, "show", "--name-only", "--format=", "site").split()
    assert sorted(files) == ["one.start", "one.txt", "two.start", "two.txt"]


def test_a_targeted_step_reads_an_upstream_output_through_a_template(repo):
    write(repo, """\
        amelia: 1
        targets:
          docs: {branch: amelia/docs}
        steps:
          summary:
            inputs: ["src/*.py"]
            run: grep -c def src/a.py > build.txt
            output: build.txt
          publish:
            target: docs
            run: printf '%s' "${{ steps.summary.output }}" > count.txt
            output: count.txt
        """)
    (repo.root / ".gitignore").write_text(".amelia/\nbuild.txt\n")
    before = snapshot(repo.root)
    repo.run("run", check=0)
    assert sh(repo.root, "show", "amelia/docs:count.txt") == "1\n"
    assert snapshot(repo.root) == before


def test_the_users_own_branch_is_refused(repo):
    write(repo, DOCS.replace("branch: ${{ params.who }}/docs", "branch: main"))
    before = snapshot(repo.root)
    proc = repo.run("run")
    assert proc.returncode == 2, proc.stderr
    assert "target 'docs'" in proc.stderr and "main" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(repo.root) == before


def test_hostile_names_are_refused_before_anything_is_made(repo):
    bad = ["--upload-pack=touch x", "-b", "a..b", "../../.git/hooks/x", "x\\ny"]
    targets = "\n".join(f'      t{i}: {{branch: "{b}"}}' for i, b in enumerate(bad))
    steps = "\n".join(f"      s{i}: {{target: t{i}, run: 'true'}}" for i in range(len(bad)))
    write(repo, f"amelia: 1\n    targets:\n{targets}\n    steps:\n{steps}\n".replace("\n    ", "\n"))
    before = snapshot(repo.root)
    branches = sh(repo.root, "branch", "--list")
    proc = repo.run("run")
    assert proc.returncode == 2
    assert proc.stderr.count("error: branch") == len(bad)
    assert sh(repo.root, "branch", "--list") == branches
    assert not (repo.root / ".amelia" / "worktrees").exists()
    assert not (repo.root / "x").exists() and not list(repo.root.glob("*upload*"))
    assert snapshot(repo.root) == before


def test_a_project_in_a_folder_of_the_repository_commits_there(repo):
    app = repo.root / "app"
    app.mkdir()
    (app / "amelia.yaml").write_text(textwrap.dedent("""\
        amelia: 1
        root: .
        targets:
          docs: {branch: app-docs}
        steps:
          note:
            target: docs
            run: pwd > where.txt
            output: where.txt
        """))
    sh(repo.root, "add", "app/amelia.yaml")
    # the worktree starts from HEAD: it has app/ (the test's commit runs no hook of the repo)
    git_nohooks(repo.root, *USER, "commit", "-q", "-m", "app")
    before = snapshot(repo.root)
    subprocess.run([sys.executable, "-m", "amelia", "run"], cwd=app, check=True, capture_output=True)
    assert sh(repo.root, "show", "--name-only", "--format=", "app-docs").split() == ["app/where.txt"]
    where = sh(repo.root, "show", "app-docs:app/where.txt").strip()
    assert where.endswith("/app/.amelia/worktrees/docs/app")
    assert snapshot(repo.root) == before


def test_push_happens_only_when_asked(repo, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    sh(repo.root, "remote", "add", "origin", str(remote))
    write(repo, DOCS.replace('author: "Doc Bot <bot@example.com>"', "push: origin"))
    before = snapshot(repo.root)
    repo.run("run", check=0)
    assert sh(remote, "branch", "--list") == ""  # `push:` names the remote; --push asks
    proc = repo.run("run", "--push", check=0)
    assert "pushed amelia/docs (nothing new to commit)" in proc.stdout
    assert sh(remote, "rev-parse", "amelia/docs") == sh(repo.root, "rev-parse", "amelia/docs")
    assert snapshot(repo.root) == before


def test_a_push_to_a_remote_that_is_not_there_fails_the_run(repo):
    write(repo, DOCS.replace('author: "Doc Bot <bot@example.com>"', "push: upstream"))
    proc = repo.run("run", "--push")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED  target:docs" in proc.stdout and "upstream" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_run_killed_before_its_commit_is_committed_by_the_next_one(repo):
    write(repo, DOCS)
    repo.run("run", check=0)
    wt = repo.root / ".amelia" / "worktrees" / "docs"
    # As if the run had been killed after the step and before the commit: the output is in
    # the worktree, the branch does not have it, and the marker says a commit is due.
    git_nohooks(wt, "reset", "-q", "--soft", "HEAD~1")
    git_nohooks(wt, "reset", "-q")
    (repo.root / ".amelia" / "worktrees" / ".commit-pending").write_text("")
    proc = repo.run("run", check=0)
    assert "0 ran, 1 cached" in proc.stdout and "commit  target:docs" in proc.stdout
    assert branch_log(repo.root) == ["docs: api|Doc Bot", "init|User"]
    assert not (repo.root / ".amelia" / "worktrees" / ".commit-pending").exists()
    assert "commit" not in repo.run("run", check=0).stdout  # and then it is a no-op again


def test_show_lists_the_runs_commit(repo):
    write(repo, DOCS)
    repo.run("run", check=0)
    out = repo.run("show", "last", check=0).stdout
    sha = sh(repo.root, "rev-parse", "amelia/docs").strip()
    assert f"commit   target:docs  {sha[:10]} on amelia/docs (1 file)" in out


CODER = """\
#!/bin/sh
printf 'def b():\\n    return 2\\n' > src/b.py
echo '{"type":"result","is_error":false,"result":"added src/b.py","usage":{}}'
"""


def test_a_step_after_a_coding_agent_in_its_worktree_reads_what_the_agent_wrote(repo, tmp_path):
    """The agent's files are not declared paths: the step that `needs:` it hashes its inputs
    again when the agent has run, so its record is keyed by what it read and the next run
    is a no-op."""
    coder = tmp_path / "claude"
    coder.write_text(CODER)
    coder.chmod(0o755)
    write(repo, """\
        amelia: 1
        models:
          coder: {provider: claude-code, retries: 0}
        targets:
          feature: {branch: feature}
        steps:
          implement:
            target: feature
            agent: {model: coder}
            prompt: Add b().
            output: notes/implement.md
          check:
            target: feature
            needs: [implement]
            inputs: ["src/*.py"]
            run: cat src/*.py > all.txt
            output: all.txt
        """)
    before = snapshot(repo.root)
    env = {"CLAUDE_CODE_PATH": str(coder)}
    repo.run("run", env=env, check=0)
    assert "def b():" in sh(repo.root, "show", "feature:all.txt")
    assert sorted(sh(repo.root, "show", "--name-only", "--format=", "feature").split()) == [
        "all.txt", "notes/implement.md", "src/b.py"]
    again = repo.run("run", env=env, check=0)
    assert "0 ran, 2 cached" in again.stdout, again.stdout
    assert snapshot(repo.root) == before


def test_a_symlink_on_the_branch_never_leads_a_write_into_the_checkout(repo):
    """The branch holds docs -> ../../../docs: from the worktree that is the user's docs/.
    A targeted step's outputs are confined to its worktree: the step fails, and the
    user's docs/ is not written."""
    root = repo.root
    (root / "docs").mkdir()
    (root / "docs" / "api.md").write_text("the user's own\n")
    sh(root, "add", "docs/api.md")
    # A branch whose docs is a link, made with plumbing (the user's checkout is not touched).
    blob = git_nohooks(root, "hash-object", "-w", "--stdin", input="../../../docs").strip()
    tree = git_nohooks(root, "mktree", input=f"120000 blob {blob}\tdocs\n").strip()
    commit = git_nohooks(root, *USER, "commit-tree", tree, "-m", "evil").strip()
    git_nohooks(root, "branch", "evil", commit)
    write(repo, DOCS.replace('author: "Doc Bot <bot@example.com>"', "base: evil")
          .replace('inputs: ["src/*.py"]', "inputs: []").replace("grep -h def src/*.py", "echo pwned"))
    before = snapshot(repo.root)
    proc = repo.run("run")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "symlink" in proc.stdout and "FAILED  api" in proc.stdout
    assert (root / "docs" / "api.md").read_text() == "the user's own\n"
    assert snapshot(repo.root) == before
