"""`amelia init` (issue 15): a project from nothing or from a shipped recipe; never a file
overwritten without --force, and nothing written at all when it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import REPO

SCHEMA_ID = json.loads((REPO / "schemas" / "amelia.schema.json").read_text())["$id"]
EDITOR_LINE = f"# yaml-language-server: $schema={SCHEMA_ID}"
OFFLINE = {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def tree(root: Path) -> dict:
    """Every file under root with its text (links as `-> target`)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_file():
            out[rel] = p.read_text()
    return out


def test_an_empty_folder_gets_a_working_pipeline(project):
    r = project.run("init", "new", check=0)
    new = project.root / "new"
    assert r.stdout.splitlines() == [
        "amelia: a new project in new",
        "  created      amelia.yaml",
        "  created      prompts/brief.md",
        "  created      .gitignore (.amelia/)",
        "next: cd new && amelia run",
    ]
    text = (new / "amelia.yaml").read_text()
    assert text.splitlines()[0] == EDITOR_LINE
    assert "name: new\n" in text and "provider: local" in text
    assert "${{ steps.outline.output }}" in (new / "prompts" / "brief.md").read_text()
    assert (new / ".gitignore").read_text() == ".amelia/\n"
    # It works as it is: one command and one agent, offline on the bundled model.
    (new / ".git").mkdir()  # the project's root, as in a repository (not the tmp folder's)
    run = project.run("run", "new/amelia.yaml", "-p", "topic=a kettle", env=OFFLINE, timeout=300, check=0)
    assert "2 ran, 0 cached" in run.stdout, run.stdout
    assert (new / "build" / "outline.md").read_text().startswith("# a kettle\n")
    assert (new / "build" / "brief.md").read_text().strip()
    again = project.run("run", "new/amelia.yaml", "-p", "topic=a kettle", env=OFFLINE, check=0)
    assert "0 ran, 2 cached" in again.stdout


def test_init_without_a_folder_scaffolds_the_current_one(project):
    r = project.run("init", check=0)
    assert r.stdout.splitlines()[-1] == "next: amelia run"  # no `cd`: it is here
    assert project.exists("amelia.yaml") and project.exists("prompts/brief.md")
    assert project.run("validate", check=0).stdout == "amelia.yaml: ok (2 steps)\n"


def test_existing_files_are_refused_by_name_and_nothing_is_written(project):
    project.write("amelia.yaml", "amelia: 1\nsteps: {}\n")
    project.write("prompts/brief.md", "mine\n")
    project.write("notes.txt", "mine\n")
    before = tree(project.root)
    r = project.run("init")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == ("error: not overwriting 2 existing files in .: amelia.yaml, prompts/brief.md\n"
                        "  hint: pass --force to replace them, or choose an empty folder\n")
    assert tree(project.root) == before  # no .gitignore either: refused before anything


def test_force_overwrites_the_scaffold_files_and_nothing_else(project):
    project.write("amelia.yaml", "amelia: 1\nsteps: {}\n")
    project.write("notes.txt", "mine\n")
    r = project.run("init", "--force", check=0)
    assert "  overwrote    amelia.yaml" in r.stdout.splitlines()
    assert "  created      prompts/brief.md" in r.stdout.splitlines()
    assert project.read("amelia.yaml").startswith(EDITOR_LINE + "\n")
    assert project.read("notes.txt") == "mine\n"


def test_force_replaces_a_link_and_never_writes_through_it(project, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("theirs\n")
    os.symlink(outside, project.root / "amelia.yaml")
    project.run("init", "--force", check=0)
    assert outside.read_text() == "theirs\n"
    assert not (project.root / "amelia.yaml").is_symlink()


def test_gitignore_gets_the_store_once(project):
    project.write(".gitignore", "node_modules")  # no newline at the end
    r = project.run("init", check=0)
    assert "  added        .amelia/ to .gitignore" in r.stdout.splitlines()
    assert project.read(".gitignore") == "node_modules\n.amelia/\n"
    r = project.run("init", "--force", check=0)
    assert "  kept         .gitignore (it ignores .amelia/ already)" in r.stdout.splitlines()
    assert project.read(".gitignore") == "node_modules\n.amelia/\n"


@pytest.mark.parametrize("line", ["/.amelia", ".amelia", "  .amelia/  "])
def test_gitignore_that_ignores_the_store_already_is_kept(project, line):
    project.write(".gitignore", f"build/\n{line}\n")
    project.run("init", check=0)
    assert project.read(".gitignore") == f"build/\n{line}\n"


def test_a_gitignore_that_is_a_link_is_not_written_through(project, tmp_path):
    outside = tmp_path / "ignore"
    outside.write_text("x\n")
    os.symlink(outside, project.root / ".gitignore")
    r = project.run("init", check=0)
    assert "add .amelia/ to it yourself" in r.stdout
    assert outside.read_text() == "x\n"


def test_an_unknown_recipe_is_refused_with_a_suggestion_and_the_list(project):
    r = project.run("init", "--recipe", "code-reveiw")
    assert r.returncode == 2
    assert r.stderr == (
        "error: no shipped recipe named 'code-reveiw'\n"
        "  hint: did you mean 'code-review'? shipped recipes: code-review, discovery-design-planning, "
        "docs-from-code, full-sdlc (`amelia init --list` describes them)\n")
    assert tree(project.root) == {}


def test_list_names_each_shipped_recipe_with_its_description(project):
    from amelia.init import description, shipped

    r = project.run("init", "--list", check=0)
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == list(shipped())
    assert lines[0] == ("code-review                " + description(shipped()["code-review"]))
    assert "A diff or source files in" in lines[0]
    assert lines[-1] == "amelia init --recipe NAME [DIR] starts a project from one"
    assert tree(project.root) == {}  # --list writes nothing


def test_a_recipe_becomes_amelia_yaml_with_the_published_schema(project):
    r = project.run("init", "--recipe", "code-review", "rev", check=0)
    assert r.stdout.splitlines() == [
        "amelia: a new project in rev from the recipe code-review",
        "  created      amelia.yaml",
        "  created      prompts/",
        "  created      .gitignore (.amelia/)",
        'next: cd rev && amelia run -p paths="…"',  # the param it needs
    ]
    shipped_text = (REPO / "recipes" / "code-review.yaml").read_text()
    text = project.read("rev/amelia.yaml")
    assert text.splitlines()[0] == EDITOR_LINE
    assert text.splitlines()[1:] == shipped_text.replace(
        "amelia run recipes/code-review.yaml", "amelia run").splitlines()[1:]
    assert "#   amelia run -p paths=changes.diff" in text.splitlines()  # its usage, as amelia.yaml
    assert (project.root / "rev" / "prompts").is_dir()
    assert project.run("validate", "rev/amelia.yaml", check=0).stdout.endswith(": ok (2 steps)\n")


def test_a_recipes_prompt_files_are_copied_beside_it(tmp_path, monkeypatch):
    """A recipe names its prompt files relative to itself (recipes/NAME/...): they land in
    DIR/NAME/..., so the copied amelia.yaml finds them."""
    from amelia import api
    from amelia.init import scaffold

    source = tmp_path / "recipes"
    (source / "ask" / "prompts").mkdir(parents=True)
    (source / "ask.yaml").write_text(
        "amelia: 1\ndescription: Ask.\nparams:\n  q: {type: string}\n"
        "steps:\n  a:\n    agent: {system: Hi.}\n    prompt: ask/prompts/q.md\n    output: out.md\n")
    (source / "ask" / "prompts" / "q.md").write_text("Q: ${{ params.q }}\n")
    dest = tmp_path / "proj"
    done = scaffold(str(dest), "ask", source=str(source))
    assert done.created == ("amelia.yaml", "ask/prompts/q.md", "prompts/")
    assert (dest / "ask" / "prompts" / "q.md").read_text() == "Q: ${{ params.q }}\n"
    (dest / ".git").mkdir()
    pipeline = api.validate(str(dest / "amelia.yaml"), (("q", "x"),))
    assert [s.id for s in pipeline.steps] == ["a"]


def test_a_folder_in_the_way_is_refused(project):
    (project.root / "amelia.yaml").mkdir()
    r = project.run("init", "--force")
    assert r.returncode == 2
    assert "in the way: amelia.yaml" in r.stderr
    assert not project.exists("prompts")


def test_the_shipped_recipes_are_found_in_the_source_tree():
    from amelia.init import recipes_dir, shipped

    assert Path(recipes_dir()) == REPO / "recipes"
    assert list(shipped()) == ["code-review", "discovery-design-planning", "docs-from-code", "full-sdlc"]


def test_a_linked_prompts_folder_is_never_written_through(project, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, project.root / "prompts")
    r = project.run("init", "--force")
    assert r.returncode == 2
    assert "symbolic link that leads out of .: prompts/brief.md" in r.stderr
    assert list(outside.iterdir()) == [] and not project.exists("amelia.yaml")
