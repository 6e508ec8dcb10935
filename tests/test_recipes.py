"""The shipped recipes (issue 15): each is a valid, documented pipeline; the ones without a
coding agent run offline on the bundled model, and full-sdlc runs with a stand-in for the
Claude Code CLI in a real git repository. Also the pre-commit hook and the wheel's copy."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

RECIPES = REPO / "recipes"
NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))
OFFLINE = {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
USER = ["-c", "user.name=User", "-c", "user.email=user@example.com"]


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(project, monkeypatch):
    """The project as a git repository with one commit (its root is the project)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for v in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(v, raising=False)
    git(project.root, "init", "-q", "-b", "main")
    project.write(".gitignore", ".amelia/\nbuild/\n")
    project.write("src/calc.py", "def add(a, b):\n    return a + b\n\n\nclass Calc:\n    pass\n")
    project.write("src/util/text.py", "def shout(s):\n    return s.upper()\n")
    git(project.root, "add", "-A")
    git(project.root, *USER, "commit", "-q", "-m", "init")
    return project


def use(project, name: str) -> dict:
    """The shipped recipe as the project's amelia.yaml; its parsed content."""
    text = (RECIPES / f"{name}.yaml").read_text()
    project.write("amelia.yaml", text)
    return yaml.safe_load(text)


def test_the_four_recipes_are_shipped():
    assert NAMES == ["code-review", "discovery-design-planning", "docs-from-code", "full-sdlc"]


@pytest.mark.parametrize("name", NAMES)
def test_each_recipe_is_valid_and_documented(repo, name):
    text = (RECIPES / f"{name}.yaml").read_text()
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../schemas/amelia.schema.json"
    assert (RECIPES / "../schemas/amelia.schema.json").resolve().is_file()
    assert lines[1].startswith("# A recipe: ")
    assert any(f"amelia init --recipe {name}" in line for line in lines if line.startswith("#"))
    data = yaml.safe_load(text)
    assert data["name"] == name and data["description"]
    for param, spec in data["params"].items():  # the params are the recipe's interface
        assert spec.get("type") and spec.get("description"), param
    use(repo, name)
    r = repo.run("validate", check=0)
    assert r.stdout == f"amelia.yaml: ok ({len(data['steps'])} steps)\n"


def test_code_review_of_a_glob_gives_findings_that_match_its_schema(repo):
    data = use(repo, "code-review")
    r = repo.run("run", "-p", "paths=src/**/*.py", env=OFFLINE, timeout=300, check=0)
    assert "2 ran, 0 cached" in r.stdout, r.stdout
    material = repo.read("build/code-review/material.txt")
    assert [line for line in material.splitlines() if line.startswith("==> ")] == [
        "==> src/calc.py <==", "==> src/util/text.py <=="]  # ** crosses folders, as in inputs
    import jsonschema

    findings = json.loads(repo.read("build/code-review/findings.json"))
    jsonschema.validate(findings, data["steps"]["review"]["schema"])
    again = repo.run("run", "-p", "paths=src/**/*.py", env=OFFLINE, check=0)
    assert "0 ran, 2 cached" in again.stdout


def test_code_review_takes_a_diff_and_cuts_long_material(repo):
    use(repo, "code-review")
    repo.write("src/calc.py", "import os\n\n\ndef add(a, b):\n    os.system(a)\n    return a + b\n")
    repo.write("changes.diff", git(repo.root, "diff"))
    r = repo.run("run", "--only", "material", "-p", "paths=changes.diff", "-p", "max_bytes=60",
                 env=OFFLINE, check=0)
    assert "1 ran" in r.stdout
    material = repo.read("build/code-review/material.txt")
    assert material.startswith("==> changes.diff <==\ndiff --git a/src/calc.py b/src/calc.py\n")
    assert material.endswith("\n[... cut at 60 bytes]\n")


def test_docs_from_code_writes_an_overview_and_an_exact_reference(repo):
    use(repo, "docs-from-code")
    r = repo.run("run", "-p", "title=Calc", env=OFFLINE, timeout=300, check=0)
    assert "4 ran, 0 cached" in r.stdout, r.stdout
    doc = repo.read("docs/code.md")
    assert doc.startswith("# Calc\n\n")
    reference = doc.split("\n## Reference\n", 1)[1]
    assert reference == ("\n### `src/calc.py`\n\n- line 1: `def add(a, b):`\n- line 5: `class Calc:`\n"
                         "\n### `src/util/text.py`\n\n- line 1: `def shout(s):`\n")
    assert doc.split("\n## Reference\n")[0].strip() != "# Calc"  # the model's overview is there
    assert repo.run("run", "-p", "title=Calc", env=OFFLINE, check=0).stdout.count("0 ran, 4 cached") == 1


def test_discovery_design_planning_plans_offline(repo):
    data = use(repo, "discovery-design-planning")
    r = repo.run("run", "-p", "goal=Add SSO", env=OFFLINE, timeout=300, check=0)
    assert "3 ran, 0 cached" in r.stdout, r.stdout
    import jsonschema

    jsonschema.validate(json.loads(repo.read("build/ddp/plan.json")), data["steps"]["planning"]["schema"])
    assert repo.read("build/ddp/discovery.md").strip() and repo.read("build/ddp/design.md").strip()


CODER = """\
#!/bin/sh
printf 'def sub(a, b):\\n    return a - b\\n' > src/sub.py
printf 'def add(a, b):\\n    return b + a\\n' > src/calc.py
echo '{"type":"result","is_error":false,"result":"added sub(), swapped add()","usage":{}}'
"""


def test_full_sdlc_implements_on_a_branch_and_reviews_the_change(repo, tmp_path):
    """A stand-in for the Claude Code CLI edits two files; the change lands on the
    target's branch with the agent's notes and diff, the review reads that diff, and the
    user's checkout is untouched."""
    coder = tmp_path / "claude"
    coder.write_text(CODER)
    coder.chmod(0o755)
    use(repo, "full-sdlc")
    git(repo.root, "add", "amelia.yaml")
    git(repo.root, *USER, "commit", "-q", "-m", "pipeline")
    head, status = git(repo.root, "rev-parse", "HEAD"), git(repo.root, "status", "--porcelain")
    env = {**OFFLINE, "CLAUDE_CODE_PATH": str(coder)}
    r = repo.run("run", "-p", "goal=Add subtraction", env=env, timeout=300, check=0)
    assert "6 ran, 0 cached" in r.stdout, r.stdout
    assert re.search(r"commit +target:feature +[0-9a-f]{10} on amelia/feature \(4 files\)", r.stdout), r.stdout
    assert sorted(git(repo.root, "show", "--name-only", "--format=", "amelia/feature").split()) == [
        "notes/amelia/changes.diff", "notes/amelia/implementation.md", "src/calc.py", "src/sub.py"]
    assert git(repo.root, "log", "-1", "--format=%s", "amelia/feature").strip() == \
        "Add subtraction (amelia: implement, changes)"
    diff = git(repo.root, "show", "amelia/feature:notes/amelia/changes.diff")
    assert diff.startswith("# Summary from the agent\n\nadded sub(), swapped add()\n")
    assert "+def sub(a, b):" in diff and "-    return a + b" in diff and "notes/amelia" not in diff
    assert repo.read("build/full-sdlc/review.md").strip()
    assert json.loads(repo.read("build/full-sdlc/plan.json"))["milestones"] is not None
    # The user's checkout: same commit, same status (build/ is ignored), no agent edit.
    assert git(repo.root, "rev-parse", "HEAD") == head
    assert git(repo.root, "status", "--porcelain") == status
    assert not repo.exists("src/sub.py")
    again = repo.run("run", "-p", "goal=Add subtraction", env=env, check=0)
    assert "0 ran, 6 cached" in again.stdout


def test_the_recipes_can_be_included_together(repo):
    """Every output path comes from a param, so the four live side by side in one project."""
    import shutil

    shutil.copytree(RECIPES, repo.root / "recipes")
    repo.write("amelia.yaml", """\
        amelia: 1
        include:
          - {recipe: recipes/code-review.yaml, as: review, with: {paths: "src/**/*.py"}}
          - {recipe: recipes/docs-from-code.yaml, as: docs}
          - {recipe: recipes/discovery-design-planning.yaml, as: ddp, with: {goal: Add SSO}}
          - {recipe: recipes/full-sdlc.yaml, as: sdlc, with: {goal: Add SSO}}
        steps:
          report:
            run: cat build/code-review/findings.json docs/code.md > build/report.txt
            inputs: [build/code-review/findings.json, docs/code.md]
            output: build/report.txt
        """)
    r = repo.run("validate", check=0)
    assert r.stdout == "amelia.yaml: ok (16 steps)\n"
    graph = repo.run("graph", check=0).stdout
    assert "report           run    needs: docs.docs, review.review" in graph


# -- CI: the pre-commit hook and the wheel ----------------------------------------------------

def test_the_pre_commit_hook_is_well_formed_and_its_entry_validates(project):
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["amelia-validate"]
    hook = hooks[0]
    assert hook["entry"] == "amelia validate" and hook["language"] == "python"
    assert hook["pass_filenames"] is False  # validate takes one FILE; args: [FILE] names another
    files = re.compile(hook["files"])  # pre-commit matches with re.search on the path
    for path in ("amelia.yaml", "sub/amelia.yaml", "ci.amelia.yaml", "a/b/nightly.amelia.yaml"):
        assert files.search(path), path
    for path in ("amelia.yml", "amelia.yaml.bak", "notamelia.yaml", "amelia.lock", ".amelia.yaml"):
        assert not files.search(path), path
    script = Path(sys.executable).parent / "amelia"
    entry = shlex.split(hook["entry"])
    argv = ([str(script)] if script.exists() else [sys.executable, "-m", "amelia"]) + entry[1:]
    project.write("amelia.yaml", "amelia: 1\nsteps:\n  a: {run: echo hi > a.txt, output: a.txt}\n")
    project.write("ci.amelia.yaml", "amelia: 1\nsteps:\n  a: {run: echo, needs: [b]}\n")
    (project.root / ".git").mkdir()
    ok = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, env=dict(os.environ))
    assert (ok.returncode, ok.stdout) == (0, "amelia.yaml: ok (1 step)\n")
    bad = subprocess.run(argv + ["ci.amelia.yaml"], cwd=project.root, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "step 'a' needs unknown step 'b'" in bad.stderr


def test_the_wheel_carries_the_recipes():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["recipes"] == "amelia/recipes"
    from amelia.init import RECIPES_CANDIDATES

    assert RECIPES_CANDIDATES[0].endswith(os.path.join("amelia", "recipes"))  # where the wheel puts them


def test_the_workflow_in_docs_ci_is_well_formed():
    text = (REPO / "docs" / "ci.md").read_text()
    block = text.split("`.github/workflows/amelia.yml`:\n\n```yaml\n", 1)[1].split("\n```\n", 1)[0]
    flow = yaml.safe_load(block)
    assert list(flow["jobs"]) == ["validate", "run", "check"]
    commands = {job: [s["run"] for s in spec["steps"] if "run" in s] for job, spec in flow["jobs"].items()}
    assert "amelia validate --frozen" in commands["validate"]
    assert "amelia run --frozen --json > events.jsonl" in commands["run"]
    assert commands["check"][-1] == "amelia run --frozen --check"
    saved = [s for s in flow["jobs"]["run"]["steps"] if s.get("uses", "").startswith("actions/cache/save")]
    restored = [s for s in flow["jobs"]["check"]["steps"] if s.get("uses", "").startswith("actions/cache/restore")]
    assert saved[0]["with"]["key"] == restored[0]["with"]["key"]  # check reads what run wrote
    assert ".amelia/objects" in saved[0]["with"]["path"]
    assert "runner." not in str(flow.get("env"))  # the runner context is not there at workflow level


def test_a_store_carried_to_a_clean_clone_makes_check_exact(tmp_path, monkeypatch):
    """What the workflow does: a run in one clone, its store copied to a fresh clone, and
    --check there passes on committed outputs that match and fails (exit 3) on stale ones."""
    import shutil

    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    origin = tmp_path / "origin"
    (origin / "src").mkdir(parents=True)
    (origin / "docs").mkdir()
    (origin / "src" / "a.py").write_text("def a(): pass\n")
    (origin / ".gitignore").write_text(".amelia/\n")
    (origin / "amelia.yaml").write_text(
        "amelia: 1\nsteps:\n  api:\n    inputs: [\"src/*.py\"]\n"
        "    run: grep -h '^def' src/*.py > docs/api.txt\n    output: docs/api.txt\n")
    (origin / "docs" / "api.txt").write_text("def a(): pass\n")  # as a developer's run wrote it
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, *USER, "commit", "-q", "-m", "one")
    cache = tmp_path / "cache"

    def amelia(cwd, *args):
        return subprocess.run([sys.executable, "-m", "amelia", *args], cwd=cwd, capture_output=True, text=True)

    def job(name: str, *args) -> subprocess.CompletedProcess:
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), name)
        if cache.exists():
            shutil.copytree(cache, clone / ".amelia")
        r = amelia(clone, *args)
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        shutil.copytree(clone / ".amelia" / "objects", cache / "objects")
        for db in (clone / ".amelia").glob("state.db*"):
            shutil.copy2(db, cache / db.name)
        return r

    assert job("run1", "run").returncode == 0
    assert job("check1", "run", "--check").returncode == 0
    (origin / "src" / "a.py").write_text("def a(): pass\ndef b(): pass\n")  # docs/api.txt not redone
    git(origin, *USER, "commit", "-q", "-am", "two")
    assert job("run2", "run").returncode == 0
    stale = job("check2", "run", "--check")
    assert stale.returncode == 3
    assert "restore docs/api.txt (edited)" in stale.stdout
