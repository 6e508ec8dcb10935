"""`git:` steps: tag, branch, commit given paths. Names are rendered and checked when the
file is resolved (a hostile name is a located error, exit 2, and nothing is made); at run
time the kind tags or branches the target's head (after the run's commit there) or the
user's HEAD, and commits given paths in a target's worktree. Real temporary
repositories; the user's checkout is checked untouched after every test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest

from amelia import api
from amelia import events as ev
from amelia.errors import ErrorGroup, PipelineError
from amelia.processes import CancelToken
from amelia.runner import RunContext
from amelia.steps import StepError
from amelia.steps import git as git_kind
from amelia.store import Store

from gitrepo import USER, git as sh, isolate, plant_hooks, snapshot

HOSTILE = ("--upload-pack=touch x", "-b", "a..b", "../../.git/hooks/x", "a\\nb")


def rev(repo, ref) -> str:
    return sh(repo, "rev-parse", "--verify", ref + "^{commit}").strip()


class Repo:
    """The user's repository (the project's root), mid-work: a stash, a staged change, an
    unstaged edit, and hooks that leave a mark if they run."""

    def __init__(self, root: Path, marks: Path):
        self.root, self.marks = root, marks
        self.before = None

    def pipeline(self, text: str) -> str:
        """Write amelia.yaml; the user's state is taken from here on."""
        (self.root / "amelia.yaml").write_text(textwrap.dedent(text))
        self.before = snapshot(self.root)
        return str(self.root / "amelia.yaml")

    def amelia(self, *args, code=0) -> str:
        proc = subprocess.run([sys.executable, "-m", "amelia", *args], cwd=self.root,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    def refs(self) -> str:
        return sh(self.root, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    isolate(monkeypatch)
    root = tmp_path / "proj"
    root.mkdir()
    sh(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("hello\n")
    sh(root, "add", "-A")
    sh(root, *USER, "commit", "-q", "-m", "init")
    (root / "README.md").write_text("stashed\n")
    sh(root, *USER, "stash", "-q")
    (root / "staged.txt").write_text("staged\n")
    sh(root, "add", "staged.txt")
    (root / "README.md").write_text("edited, not staged\n")
    marks = tmp_path / "hook-ran"
    plant_hooks(root, marks, ("pre-commit", "commit-msg", "post-commit", "post-checkout", "reference-transaction"))
    r = Repo(root, marks)
    yield r
    if r.before is not None:
        assert snapshot(root) == r.before, "the user's checkout changed"
    assert not marks.exists(), f"a hook of the user's repo ran: {marks.read_text()}"


def errors(path: str) -> list:
    with pytest.raises((PipelineError, ErrorGroup)) as info:
        api.validate(path)
    e = info.value
    return e.errors if isinstance(e, ErrorGroup) else [e]


def located(errs) -> list:
    return sorted((e.location.line, e.location.path, e.message) for e in errs)


# -- resolve -------------------------------------------------------------------------------

def test_hostile_names_are_located_errors_and_make_nothing(repo, tmp_path):
    steps = "".join(f'  t{i}:\n    git: {{tag: "{n}"}}\n  b{i}:\n    git: {{branch: "{n}"}}\n'
                    for i, n in enumerate(HOSTILE))
    path = repo.pipeline("amelia: 1\nname: hostile\nsteps:\n" + steps)
    refs = repo.refs()
    found = located(errors(path))
    assert [(line, at) for line, at, _ in found] == \
        [(5 + 4 * i + (2 if k == "b" else 0), f"steps.{k}{i}.git.{'tag' if k == 't' else 'branch'}")
         for i in range(len(HOSTILE)) for k in "tb"]
    messages = [m for _, _, m in found]
    assert messages[0] == "tag '--upload-pack=touch x' starts with '-', which git would read as an option"
    assert messages[2] == "tag '-b' starts with '-', which git would read as an option"
    assert messages[4] == "tag 'a..b' contains '..'"
    assert messages[6] == "tag '../../.git/hooks/x' contains '..'"
    assert messages[8] == "tag 'a\\nb' contains a control character (U+000A)"
    out = repo.amelia("run", code=2)  # refused before anything runs
    assert "amelia.yaml:5:" in out and "starts with '-'" in out and "hint:" in out
    assert repo.refs() == refs
    assert not (repo.root / "x").exists() and not (tmp_path / "x").exists()
    assert not (repo.root / ".git" / "hooks" / "x").exists()
    assert not (repo.root / ".amelia" / "worktrees").exists()


def test_other_resolve_errors(repo):
    path = repo.pipeline("""\
        amelia: 1
        name: errs
        params:
          v: {type: string, default: "1..2"}
        targets:
          docs: {branch: amelia/docs}
        steps:
          gen:
            run: echo x > out.txt
            output: out.txt
          nocommit:
            git: {commit: out.txt}
          fromparam:
            git: {tag: "v${{ params.v }}"}
          fromoutput:
            git: {tag: "${{ steps.gen.output }}"}
          branchmsg:
            git: {branch: ok, message: hello}
          paths:
            git: {commit: [".git/config", "-x", "out/*", ok.txt]}
            target: docs
        """)
    found = located(errors(path))
    assert found == [
        (12, "steps.nocommit.git.commit", "step 'nocommit' commits without `target:`"),
        (14, "steps.fromparam.git.tag", "tag 'v1..2' contains '..'"),
        (16, "steps.fromoutput.git.tag", "'steps.gen.output' cannot be used here"),
        (18, "steps.branchmsg.git.message", "a branch has no message"),
        (20, "steps.paths.git.commit[0]", "path '.git/config' is inside .git"),
        (20, "steps.paths.git.commit[1]", "path '-x' starts with '-', which git would read as an option"),
        (20, "steps.paths.git.commit[2]", "path 'out/*' is a glob; a commit names files or folders"),
    ]
    hints = {e.location.path: e.hint for e in errors(path)}
    assert "target:" in hints["steps.nocommit.git.commit"]
    assert "index" in hints["steps.nocommit.git.commit"]


def test_config_is_rendered_and_keyed(repo):
    path = repo.pipeline("""\
        amelia: 1
        name: app
        params:
          v: {type: string, default: "1.0"}
        targets:
          docs: {branch: amelia/docs}
        steps:
          tag:
            git: {tag: "${{ name }}-v${{ params.v }}", message: "release ${{ params.v }}"}
          keep:
            git: {commit: ["./out//a.md", out/dir/], message: keep}
            target: docs
        """)
    p = api.validate(path)
    assert p.step("tag").config == git_kind.GitConfig("tag", "app-v1.0", (), "release 1.0")
    assert p.step("keep").config == git_kind.GitConfig("commit", "", ("out/a.md", "out/dir/"), "keep")
    assert p.step("keep").inputs[-2:] == (".amelia/worktrees/docs/out/a.md", ".amelia/worktrees/docs/out/dir/")
    other = api.validate(path, (("v", "2.0"),))
    assert other.step("tag").config.name == "app-v2.0"
    # the rendered name is the key (the text as written is the same): a new version, a new tag
    assert other.step("tag").definition != p.step("tag").definition
    for sid in ("tag", "keep"):  # through the resolved-pipeline cache
        config = p.step(sid).config
        assert git_kind.GitConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config


# -- execute -------------------------------------------------------------------------------

def context(path: str, said: list):
    """A RunContext as the scheduler gives a step; `said` collects its progress lines."""
    pipeline = api.validate(path)
    store = Store(str(Path(path).parent))
    bus = ev.Bus()
    bus.subscribe(lambda e: said.append(e.message) if isinstance(e, ev.StepProgress) else None)
    return RunContext(pipeline, store, "run-1", bus=bus), store


def test_tag_and_branch_at_the_users_head(repo):
    path = repo.pipeline("""\
        amelia: 1
        name: local
        steps:
          tag:
            git: {tag: v1, message: first release}
          branch:
            git: {branch: keep/v1}
        """)
    said: list = []
    ctx, store = context(path, said)
    try:
        head = rev(repo.root, "HEAD")
        for sid in ("tag", "branch", "tag", "branch"):  # twice: the same commit is fine
            git_kind.execute(ctx.pipeline.step(sid), ctx, CancelToken())
        assert rev(repo.root, "v1") == head == rev(repo.root, "keep/v1")
        h = head[:7]
        assert said == [f"tagged v1 at {h} (HEAD)", f"branched keep/v1 at {h} (HEAD)",
                        f"tag v1 already at {h} (HEAD)", f"branch keep/v1 already at {h} (HEAD)"]
        assert sh(repo.root, "cat-file", "-t", "v1").strip() == "tag"
        # the user commits on: the tag does not move, the step fails with a hint
        nxt = sh(repo.root, *USER, "commit-tree", "-p", "HEAD", "-m", "next", "HEAD^{tree}").strip()
        sh(repo.root, "-c", "core.hooksPath=/dev/null", "update-ref", "refs/heads/main", nxt)
        repo.before = snapshot(repo.root)
        with pytest.raises(StepError) as e:
            git_kind.execute(ctx.pipeline.step("tag"), ctx, CancelToken())
        assert "already exists" in e.value.message and "do not move" in e.value.hint
        with pytest.raises(StepError) as e:
            git_kind.execute(ctx.pipeline.step("branch"), ctx, CancelToken())
        assert "already exists" in e.value.message and e.value.hint
        assert rev(repo.root, "v1") == head == rev(repo.root, "keep/v1")
    finally:
        ctx.close()
        store.close()


def test_outside_a_repository_is_a_step_failure(project):
    project.pipeline("""\
        amelia: 1
        name: plain
        steps:
          tag:
            git: {tag: v1}
        """)
    out = project.run("run", check=1)
    assert "FAILED  tag" in out.stdout and "is not in a git repository" in out.stdout
    assert "git init" in out.stdout


# -- end to end ----------------------------------------------------------------------------

TARGETED = """\
    amelia: 1
    name: site
    params:
      version: {type: string, default: "1.0"}
    targets:
      docs: {branch: amelia/docs, commit: "docs: ${{ run.steps }}"}
    steps:
      gen:
        run: mkdir -p out && echo "v${{ params.version }}" > out/a.md
        output: out/a.md
        target: docs
      tag:
        git: {tag: "v${{ params.version }}"}
        needs: [gen]
        target: docs
      notes:
        run: echo notes > notes.md && echo scratch > scratch.md
        outputs: [notes.md, scratch.md]
        target: docs
        needs: [tag]
      keep:
        git: {commit: notes.md, message: "keep the notes"}
        needs: [notes]
        target: docs
      mine:
        git: {branch: "before-${{ params.version }}"}
    """


def test_targeted_steps_tag_the_runs_commit(repo):
    repo.pipeline(TARGETED)
    user_head = rev(repo.root, "HEAD")
    out = repo.amelia("run", "-v")
    gen = rev(repo.root, "v1.0")
    assert sh(repo.root, "show", "-s", "--format=%s", gen).strip() == "docs: gen"
    assert sh(repo.root, "show", "v1.0:out/a.md") == "v1.0\n"  # the tag holds gen's output
    assert f"tagged v1.0 at {gen[:7]} (amelia/docs's head)" in out
    keep = sh(repo.root, "log", "--format=%H %s", "amelia/docs").splitlines()
    # the commit step committed exactly its path; the run's commit took the rest after it
    assert [line.split(" ", 1)[1] for line in keep][1:] == ["keep the notes", "docs: gen", "init"]
    assert keep[0].split(" ", 1)[1].startswith("docs: ")
    assert sh(repo.root, "show", "--name-only", "--format=", keep[1].split()[0]).split() == ["notes.md"]
    assert sh(repo.root, "show", "--name-only", "--format=", keep[0].split()[0]).split() == ["scratch.md"]
    assert rev(repo.root, "before-1.0") == user_head  # no target: the user's HEAD
    assert "committed notes.md on amelia/docs at" in out
    assert rev(repo.root, "HEAD") == user_head and not (repo.root / "out").exists()

    # nothing changed: nothing runs; a new version tags the new commit, the old tag stays
    assert "0 ran" in repo.amelia("run")
    repo.amelia("run", "-p", "version=2.0")
    assert sh(repo.root, "show", "v2.0:out/a.md") == "v2.0\n"
    assert rev(repo.root, "v1.0") == gen != rev(repo.root, "v2.0")
    assert rev(repo.root, "before-2.0") == user_head
