"""`amelia apply RUN STEP`: a coding agent's stored changes shown as a diff and written
into the user's tree only when confirmed; hostile paths refuse the whole apply; git is
never touched. The changes dir is put into a real store as a run would leave it."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

import pytest

from gitrepo import git

RUN = "20990101-000000-abcd"
BASE = "0123456789abcdef0123456789abcdef01234567"




@pytest.fixture
def repo(project, monkeypatch):
    """A git project: README.md and old.txt committed, then README.md staged as 'hello'."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "User")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "user@example.com")
    git(project.root, "init", "-q", "-b", "main")
    project.pipeline("amelia: 1\nname: t\nsteps:\n  a:\n    run: echo hi\n")
    project.write("README.md", "first\n")
    project.write("old.txt", "old\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "init")
    project.write("README.md", "hello\n")
    git(project.root, "add", "README.md")
    return project


def record_changes(root, step="fix", changed=None, deleted=(), listed=None, executable=(),
                   with_changes=True, status="ran", run_id=RUN):
    """A finished run whose `step` left a changes dir (files/ and changes.json) in the store.
    The tree's manifest is written as is (no files on disk): a hostile path stays verbatim."""
    from amelia.store import Record, StepRow, Store
    from amelia.store.objects import EXEC_PREFIX, TREE_PREFIX, tree_bytes
    from amelia.targets import changes_dir

    changed = {"README.md": "hello\nworld\n", "src/new.py": "print(1)\n"} if changed is None else changed
    store = Store(str(root))
    outputs = {"out/answer.md": store.objects.put_bytes(b"done\n")}
    if with_changes:
        manifest = {}
        for path, text in changed.items():
            digest = store.objects.put_bytes(text.encode())
            manifest[f"files/{path}"] = (EXEC_PREFIX + digest) if path in executable else digest
        data = {"base": BASE, "changed": sorted(changed) if listed is None else listed,
                "deleted": list(deleted), "target": ""}
        manifest["changes.json"] = store.objects.put_bytes(json.dumps(data).encode())
        outputs[changes_dir(step)] = TREE_PREFIX + store.objects.put_bytes(tree_bytes(manifest))
    key = f"key-{step}-{run_id}"
    store.records.save(Record(key, step, outputs, {}, run_id, 0.1))
    store.history.start_run(run_id, "t", "amelia.yaml", ["run"])
    store.history.finish_run(run_id, "ok", {}, [
        StepRow(run_id, step, status, "new step", key, time.time(), 0.1, 0, None)])
    store.close()


def user_side(repo) -> tuple:
    """Every file of the user's (but .amelia and .git) and git's index and HEAD."""
    files = {}
    for dirpath, dirs, names in os.walk(repo.root):
        dirs[:] = [d for d in dirs if d not in (".amelia", ".git")]
        for n in names:
            p = os.path.join(dirpath, n)
            files[os.path.relpath(p, repo.root)] = open(p, "rb").read()
    return files, git(repo.root, "ls-files", "-s"), git(repo.root, "rev-parse", "HEAD")


DIFF = f"""\
step fix of run {RUN}, started at 0123456:
modified: README.md
--- a/README.md
+++ b/README.md
@@ -1 +1,2 @@
 hello
+world
deleted: old.txt
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-old
new file: src/new.py
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1 @@
+print(1)
"""


def test_without_a_terminal_it_shows_the_diff_and_writes_nothing(repo):
    record_changes(repo.root, deleted=["old.txt"])
    before = user_side(repo)
    r = repo.run("apply", "last", "fix")
    assert r.returncode == 2
    assert r.stdout == DIFF
    assert "error: not applied: 3 files would change" in r.stderr
    assert "hint: pass --yes to apply them (no terminal to ask on)" in r.stderr
    assert user_side(repo) == before


def test_yes_writes_and_deletes_and_never_stages(repo):
    record_changes(repo.root, deleted=["old.txt"], executable=["tool.sh"],
                   changed={"README.md": "hello\nworld\n", "src/new.py": "print(1)\n",
                            "tool.sh": "#!/bin/sh\n"})
    _, index, head = user_side(repo)
    r = repo.run("apply", RUN[:10], "fix", "--yes", check=0)
    assert r.stdout.endswith("amelia: applied changes to 4 files; nothing staged (see `git diff`)\n")
    assert "+print(1)" in r.stdout
    assert repo.read("README.md") == "hello\nworld\n"
    assert repo.read("src/new.py") == "print(1)\n"
    assert not repo.exists("old.txt")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(repo.root / "tool.sh").st_mode & 0o777 == 0o777 & ~mask
    assert os.stat(repo.root / "src/new.py").st_mode & 0o777 == 0o666 & ~mask
    assert git(repo.root, "ls-files", "-s") == index and git(repo.root, "rev-parse", "HEAD") == head
    assert git(repo.root, "diff", "--cached", "--name-only") == "README.md\n"  # the user's own staging
    assert not [n for n in os.listdir(repo.root) if n.startswith(".amelia-tmp")]
    again = repo.run("apply", "last", "fix", check=0)  # nothing left to do, no --yes needed
    assert again.stdout == "amelia: nothing to apply: your files already match the step's changes\n"


def _on_a_terminal(repo, answer: str, *args):
    """`amelia apply` with a terminal as its stdin, answering the question."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "amelia", "apply", *args], cwd=repo.root,
                                stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        os.write(controller, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return proc.returncode, out, err


def test_on_a_terminal_it_asks_and_n_writes_nothing(repo):
    record_changes(repo.root, deleted=["old.txt"])
    before = user_side(repo)
    code, out, err = _on_a_terminal(repo, "n\n", "last", "fix")
    assert code == 0, err
    assert out.startswith(DIFF)
    assert "Apply these changes to 3 files? [y/N]" in out
    assert out.endswith("amelia: nothing applied\n")
    assert user_side(repo) == before


def test_on_a_terminal_y_writes(repo):
    record_changes(repo.root, deleted=["old.txt"])
    code, out, err = _on_a_terminal(repo, "y\n", "last", "fix")
    assert code == 0, err
    assert "Apply these changes to 3 files? [y/N]" in out
    assert out.endswith("amelia: applied changes to 3 files; nothing staged (see `git diff`)\n")
    assert repo.read("README.md") == "hello\nworld\n" and not repo.exists("old.txt")


def test_json(repo):
    record_changes(repo.root, changed={"README.md": "hello\nworld\n"})
    r = repo.run("apply", "last", "fix", "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["applied"] is False and doc["run"] == RUN and doc["base"] == BASE
    assert json.loads(r.stderr)["error"]["hint"] == "pass --yes to apply them"
    assert repo.read("README.md") == "hello\n"
    doc = json.loads(repo.run("apply", "last", "fix", "--json", "--yes", check=0).stdout)
    assert doc["applied"] is True
    assert doc["changes"] == [{"path": "README.md", "project_path": "README.md", "action": "modify",
                               "diff": "--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n hello\n+world\n"}]
    assert repo.read("README.md") == "hello\nworld\n"


@pytest.mark.parametrize("bad", ["../x", ".git/hooks/x", "sub/../../x", "/tmp/x", ".amelia/state.db",
                                 "-x", "link/x"])
def test_a_hostile_path_refuses_the_whole_apply(repo, tmp_path, bad):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo.root / "link")
    record_changes(repo.root, changed={"README.md": "pwned\n", bad: "pwned\n"})
    before = user_side(repo)
    r = repo.run("apply", "last", "fix", "--yes")
    assert r.returncode == 4, r.stderr
    assert "error: refusing to apply: path" in r.stderr and "nothing was written" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""  # not even a diff: the changes are not shown as if they were fine
    assert user_side(repo) == before
    assert not list(outside.iterdir()) and not (tmp_path / "x").exists()
    assert not (repo.root / ".git/hooks/x").exists()


def test_a_hostile_deletion_refuses_the_whole_apply(repo, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    record_changes(repo.root, changed={"README.md": "pwned\n"}, deleted=["../victim"])
    before = user_side(repo)
    r = repo.run("apply", "last", "fix", "--yes")
    assert r.returncode == 4 and "refusing to apply: path '../victim'" in r.stderr
    assert victim.read_text() == "keep me\n" and user_side(repo) == before


def test_a_listed_file_without_its_copy_is_refused(repo):
    record_changes(repo.root, changed={"README.md": "x\n"}, listed=["README.md", "ghost.py"])
    r = repo.run("apply", "last", "fix", "--yes")
    assert r.returncode == 4 and "hold no copy of it" in r.stderr
    assert repo.read("README.md") == "hello\n"


def test_bad_run_or_step(repo):
    r = repo.run("apply", "last", "fix")
    assert r.returncode == 2 and "no runs yet" in r.stderr
    record_changes(repo.root)
    r = repo.run("apply", "nope", "fix")
    assert r.returncode == 2 and "error: no run 'nope'" in r.stderr
    r = repo.run("apply", "last", "fx")
    assert r.returncode == 2 and f"error: run {RUN} has no step 'fx'" in r.stderr
    assert "did you mean 'fix'?" in r.stderr


def test_a_step_without_changes(repo):
    record_changes(repo.root, step="docs", with_changes=False)
    r = repo.run("apply", "last", "docs", "--yes")
    assert r.returncode == 2
    assert "error: step 'docs' has no changes to apply" in r.stderr
    assert "only a step whose model edits files (claude-code) has changes to apply; " \
           "a targeted step's outputs are on its branch: merge it" in r.stderr


def test_a_failed_step(repo):
    record_changes(repo.root, status="failed")
    r = repo.run("apply", "last", "fix", "--yes")
    assert r.returncode == 2 and f"step 'fix' did not succeed in run {RUN} (failed)" in r.stderr
    assert repo.read("README.md") == "hello\n"


def test_escape_sequences_in_a_diff_are_shown_not_run(repo):
    record_changes(repo.root, changed={"README.md": "hello\n\x1b]0;title\x07\n"})
    r = repo.run("apply", "last", "fix")
    assert "\x1b" not in r.stdout and "+\\x1b]0;title\\x07" in r.stdout


STAND_IN = """#!{python}
import json, os
with open("README.md", "a") as f:
    f.write("agent line\\n")
with open("feature.py", "w") as f:
    f.write("print('feature')\\n")
os.remove("old.txt")
print(json.dumps({{"type": "result", "is_error": False, "result": "done", "usage": {{}}}}))
"""


def test_end_to_end_a_coding_agents_edits_reach_the_tree_only_through_apply(repo, tmp_path):
    """A real run of an agent step with a stand-in `claude` CLI: its edits are in the
    store, not in the user's files, until `apply --yes` writes them (nothing staged)."""
    exe = tmp_path / "claude"
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(0o755)
    repo.pipeline("amelia: 1\nmodels:\n  coder: {provider: claude-code, retries: 0}\n"
                  "steps:\n  edit:\n    agent: {model: coder}\n    prompt: Improve it.\n"
                  "    output: build/edit.md\n")
    git(repo.root, "commit", "-q", "-am", "pipeline")
    index = git(repo.root, "ls-files", "-s")
    repo.run("run", env={"CLAUDE_CODE_PATH": str(exe)}, check=0)
    assert repo.read("README.md") == "hello\n" and not repo.exists("feature.py")
    shown = repo.run("show", "last", check=0).stdout  # the changed files are the step's outputs
    assert ("changed 3 files (not in your tree: `amelia apply RUN STEP`)\n"
            "           README.md\n           feature.py\n           old.txt (deleted)\n") in shown
    r = repo.run("apply", "last", "edit")
    assert r.returncode == 2
    assert "+agent line" in r.stdout and "new file: feature.py" in r.stdout
    assert "deleted: old.txt" in r.stdout
    repo.run("apply", "last", "edit", "--yes", check=0)
    assert repo.read("README.md") == "hello\nagent line\n"
    assert repo.read("feature.py") == "print('feature')\n" and not repo.exists("old.txt")
    assert git(repo.root, "ls-files", "-s") == index
