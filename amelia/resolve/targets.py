"""`targets:` → TargetConfig, and a step's `target:` checked (DESIGN §7).

Every name that reaches git is rendered (params, name) and checked here, at validate
time, before any file or branch is made: a bad branch, base, remote or author is a
located error (exit 2), never a git argument. The run-time side is amelia/targets.py.
"""

from __future__ import annotations

import os
import re

from ..errors import did_you_mean, shown
from ..paths import git_top
from ..git.refs import author_problem, base_problem, ref_problem, remote_problem, target_name_problem
from ..spec import TargetConfig
from ..targets import RUN_REFS

_RUN_MARK = "\x00run.{}\x00"  # a run-time reference kept through rendering


def target_configs(doc, refs, root: str, err) -> dict:
    """name → TargetConfig of a document's `targets:`; a bad entry is reported and left out."""
    out = {}
    declared = doc.data.get("targets") or {}
    if not declared:
        return out
    subdir = _subdir(root)
    for name, data in declared.items():
        base = ("targets", name)
        problem = target_name_problem(name)
        if problem:
            err(f"target name '{shown(name)}' {problem}", base,
                "name it with letters, digits, '_' and '-', starting with a letter or '_'")
            continue
        ok = True
        values = {}
        for key, check, hint in (
                ("branch", ref_problem, "a branch name such as amelia/docs: git's rules, no leading '-', "
                                        "no '..', spaces or control characters"),
                ("base", base_problem, "a branch, tag or commit to start from, e.g. main or HEAD"),
                ("push", remote_problem, "the name of a remote from `git remote`, e.g. origin (never a URL)")):
            if key not in data:
                continue
            text = refs.render_path(data[key], base + (key,))
            if text is None:
                ok = False
                continue
            problem = check(text)
            if problem:
                err(f"{key} '{shown(text)}' {problem}", base + (key,), hint)
                ok = False
            values[key] = text
        author = data.get("author", "")
        if author and author_problem(author):
            err(f"author '{shown(author)}' {author_problem(author)}", base + ("author",),
                "e.g. author: \"Amelia Bot <bot@example.com>\"")
            ok = False
        message = ""
        if "commit" in data:
            message = _message(data["commit"], refs, base + ("commit",))
            if message is None:
                ok = False
        other = next((n for n, t in out.items() if ok and t.branch == values.get("branch")), None)
        if other:
            err(f"targets '{other}' and '{name}' both commit to branch '{shown(values['branch'])}'",
                base + ("branch",), "a branch has one worktree: give each target its own branch")
            ok = False
        if ok:
            out[name] = TargetConfig(name=name, branch=values["branch"], base=values.get("base", "HEAD"),
                                     commit=message, author=author, push=values.get("push", ""),
                                     subdir=subdir, description=str(data.get("description", "")))
    return out


def _message(text: str, refs, where: tuple) -> str | None:
    """The commit message with params and name filled in; ${{ run.id }} and
    ${{ run.steps }} kept for commit time."""
    kept = RUN_REFS.sub(lambda m: _RUN_MARK.format(m.group(1)), text)
    rendered = refs.render_path(kept, where)
    if rendered is None:
        return None
    return re.sub("\x00run\\.(id|steps)\x00", lambda m: "${{ run.%s }}" % m.group(1), rendered)


def check_step_target(s, targets: dict, declared: dict, in_repo: bool, err) -> str:
    """The target a step names, checked; "" for none (or after an error)."""
    name = s.data.get("target")
    if not name:
        return ""
    where = s.base + ("target",)
    if name not in declared:
        err(f"step '{s.local}' names target '{name}', which is not declared", where,
            did_you_mean(name, declared) or ("declare it under `targets:`, e.g. targets: {" + name +
                                             ": {branch: amelia/" + name + "}}"))
        return ""
    if name not in targets:
        return ""  # the target's own error was reported
    if not in_repo:
        err(f"step '{s.local}' has target '{name}', but the project is not in a git repository", where,
            "run `git init` and commit first, or remove `target:` (a target commits to a branch)")
        return ""
    if s.depfile:
        err(f"step '{s.local}' has both `target:` and `depfile:`", where,
            "a depfile is not read in a target's worktree yet; drop one of them")
        return ""
    return name


def in_git_repo(root: str) -> bool:
    """A `.git` (folder or file) in the root or a folder above it: no git call."""
    return git_top(root) is not None


def _subdir(root: str) -> str:
    """The project root's folder in its repository: "" at the top, else "app/"."""
    top = git_top(root)
    if top is None:
        return ""
    rel = os.path.relpath(os.path.realpath(root), os.path.realpath(top)).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"


