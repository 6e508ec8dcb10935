"""`include:` end to end through the CLI: namespaced steps, references across the boundary,
`with:` params (typed, passed through), a recipe's own files, the resolve cache; git
recipes pinned in amelia.lock and `--frozen`."""

from __future__ import annotations

import json
import subprocess
import textwrap


def write(root, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))


REVIEW = """\
    amelia: 1
    name: review
    params:
      subject: {type: string}
      out: {type: string, default: build/review}
      rounds: {type: integer, default: 1}
    steps:
      draft:
        run: mkdir -p ${{ params.out }} && echo "draft of ${{ params.subject }} x${{ params.rounds }}" > ${{ params.out }}/draft.txt
        output: ${{ params.out }}/draft.txt
      critique:
        inputs: ["${{ params.out }}/draft.txt"]
        run: echo "critique of $(cat ${{ params.out }}/draft.txt)" > ${{ params.out }}/critique.txt
        output: ${{ params.out }}/critique.txt
    """

TOP = """\
    amelia: 1
    params:
      topic: {type: string, default: caching}
      count: {type: integer, default: 3}
    include:
      - recipe: recipes/review.yaml
        with: {subject: "${{ params.topic }}", rounds: "${{ params.count }}"}
      - recipe: recipes/review.yaml
        as: second
        with: {subject: other, out: build/second}
    steps:
      final:
        needs: [second.critique]
        run: printf '%s|' "${{ steps.review.critique.output }}" > final.txt
        output: final.txt
    """


def test_steps_are_namespaced_and_referenced_across_the_boundary(project):
    write(project.root, "recipes/review.yaml", REVIEW)
    write(project.root, "amelia.yaml", TOP)
    graph = project.run("graph", check=0).stdout
    assert "review.critique  run    needs: review.draft" in graph
    assert "final            run    needs: review.critique, second.critique" in graph
    project.run("run", check=0)
    # the param passed through keeps its type (an integer), the other include its own values
    assert (project.root / "final.txt").read_text() == "critique of draft of caching x3\n|"
    assert (project.root / "build/second/critique.txt").read_text() == "critique of draft of other x1\n"
    again = project.run("run", check=0)
    assert "0 ran, 5 cached" in again.stdout
    only = project.run("run", "--force", "second.draft", check=0).stdout
    assert "run     second.draft     forced" in only and "review.draft" not in only


def test_editing_a_recipe_is_seen(project):
    write(project.root, "recipes/review.yaml", REVIEW)
    write(project.root, "amelia.yaml", TOP)
    project.run("run", check=0)
    text = (project.root / "recipes/review.yaml").read_text().replace('echo "critique of', 'echo "review of')
    (project.root / "recipes/review.yaml").write_text(text)
    out = project.run("run", check=0).stdout
    assert "run     review.critique" in out and "run     second.critique" in out
    assert "review.draft" not in out
    assert (project.root / "final.txt").read_text() == "review of draft of caching x3\n|"


def test_a_recipes_prompt_file_is_read_from_its_own_folder(project):
    write(project.root, "lib/ask.yaml", """\
        amelia: 1
        params:
          question: {type: string}
        models:
          default: {provider: local, max_tokens: 16}
        steps:
          answer:
            agent: {system: Be brief.}
            prompt: prompts/answer.md
            output: build/answer.md
        """)
    write(project.root, "lib/prompts/answer.md", "Answer: ${{ params.question }}\n")
    write(project.root, "amelia.yaml", """\
        amelia: 1
        include:
          - recipe: lib/ask.yaml
            with: {question: why}
        """)
    assert project.run("validate").returncode == 0  # prompts/answer.md is not in the project root
    (project.root / "lib/prompts/answer.md").write_text("Answer: ${{ params.qestion }}\n")
    proc = project.run("validate")
    assert proc.returncode == 2
    assert "lib/prompts/answer.md:1:9: error: undefined param 'qestion'" in proc.stderr
    assert "included from amelia.yaml:3 (as ask)" in proc.stderr


def test_json_error_of_a_recipe_names_its_file_and_include(project):
    write(project.root, "recipes/review.yaml", REVIEW.replace("needs", "needs").replace(
        "inputs: [", "needs: [draf]\n        inputs: ["))
    write(project.root, "amelia.yaml", TOP)
    proc = project.run("validate", "--json")
    assert proc.returncode == 2
    err = json.loads(proc.stdout or proc.stderr)["error"]
    errors = err.get("errors", [err])
    assert {e["file"] for e in errors} == {"recipes/review.yaml"}
    assert all(e["included_from"].startswith("amelia.yaml:") for e in errors)


# -- git recipes -----------------------------------------------------------------------------

def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=R", "-c", "user.email=r@x", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def recipes_repo(tmp_path) -> tuple:
    """A repository of recipes with tags v1 and v2, served as file://."""
    src = tmp_path / "recipes-src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    write(src, "review.yaml", REVIEW)
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "v1")
    git(src, "tag", "v1")
    write(src, "review.yaml", REVIEW.replace('echo "critique of', 'echo "v2 critique of'))
    git(src, "commit", "-q", "-am", "v2")
    git(src, "tag", "v2")
    bare = tmp_path / "recipes.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    return bare, git(src, "rev-parse", "v1"), git(src, "rev-parse", "v2")


def git_top(url: str, ref: str) -> str:
    return f"""\
        amelia: 1
        include:
          - recipe: "git+{url}//review.yaml@{ref}"
            as: review
            with: {{subject: remote}}
        """


def test_a_git_recipe_is_pinned_in_the_lock_and_frozen_checks_it(project, tmp_path):
    bare, v1, v2 = recipes_repo(tmp_path)
    url = f"file://{bare}"
    write(project.root, "amelia.yaml", git_top(url, "v1"))
    frozen = project.run("run", "--frozen")
    assert frozen.returncode == 2 and "amelia.lock" in frozen.stderr
    assert not (project.root / "amelia.lock").exists()
    project.run("run", check=0)
    lock = json.loads((project.root / "amelia.lock").read_text())
    (entry,) = lock["recipes"].values()
    assert entry["commit"] == v1
    assert (project.root / "build/review/critique.txt").read_text().startswith("critique of")
    assert project.run("run", "--frozen", check=0).returncode == 0
    # The tag moves upstream: the lock keeps v1's commit until `amelia lock --update`.
    src = tmp_path / "recipes-src"
    git(src, "tag", "-f", "v1", "v2")
    subprocess.run(["git", "push", "-q", "--force", str(bare), "refs/tags/v1"], cwd=src, check=True)
    assert "0 ran" in project.run("run", check=0).stdout
    project.run("lock", "--update", check=0)
    assert json.loads((project.root / "amelia.lock").read_text())["recipes"][
        next(iter(lock["recipes"]))]["commit"] == v2
    out = project.run("run", check=0).stdout
    assert "review.critique" in out
    assert (project.root / "build/review/critique.txt").read_text().startswith("v2 critique")


def test_a_lock_entry_no_include_names_fails_a_frozen_run(project, tmp_path):
    bare, v1, _ = recipes_repo(tmp_path)
    write(project.root, "amelia.yaml", git_top(f"file://{bare}", "v1"))
    project.run("lock", check=0)
    write(project.root, "amelia.yaml", git_top(f"file://{bare}", v1[:12]))
    proc = project.run("run", "--frozen")
    assert proc.returncode == 2
    assert "not in amelia.lock" in proc.stderr or "no include names" in proc.stderr


def test_a_namespace_on_the_command_line_names_every_step_of_the_recipe(project):
    write(project.root, "recipes/review.yaml", REVIEW)
    write(project.root, "amelia.yaml", TOP)
    out = project.run("run", "--only", "second", check=0).stdout
    assert "second.draft" in out and "second.critique" in out
    assert "review." not in out and "final" not in out
