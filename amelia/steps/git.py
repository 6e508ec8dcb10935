"""`git:` steps: one explicit git action (DESIGN §7, issue 14).

    git: {tag: NAME, message: TEXT}   # annotated with a message, else lightweight
    git: {branch: NAME}
    git: {commit: PATHS, message: TEXT}   # needs `target:`

With `target:`, a tag or branch points at the target branch's head, after the run's
commits so far on that target are made (`ctx.commit_target`), so it names what this
run produced; a commit stages exactly the given paths in the target's worktree. Without
a target, a tag or branch points at the user's HEAD commit: a new ref in their
repository, their checkout, index and branch untouched. A commit without a target is
refused (it would stage into the user's index).

Names and the message may use `${{ params.X }}` and `${{ name }}` only: they are
rendered and checked (git's ref rules, no leading '-', no '..') when the file is
resolved, so model output never becomes a ref. The rendered values are the step's key
material: a new version param means a new tag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import shown
from . import Resolved, StepError, StepResult

ACTIONS = ("tag", "branch", "commit")


@dataclass(frozen=True)
class GitConfig:
    action: str  # tag | branch | commit
    name: str = ""  # the tag or branch, rendered and checked
    paths: tuple = ()  # commit: project-relative paths as written (rendered, normalised)
    message: str = ""  # rendered; "" for none (a lightweight tag, the default commit message)

    @classmethod
    def from_dict(cls, d: dict) -> "GitConfig":
        return cls(d["action"], d.get("name", ""), tuple(d.get("paths") or ()), d.get("message", ""))


CONFIG = GitConfig
KEY_REPLACES = ("git",)


def key_material(config: GitConfig) -> dict:
    # The names as rendered (a param's value, not its ${{ }} text): the step does
    # something new when they change.
    return {"git": asdict(config)}




def resolve(ctx, sid: str, data: dict) -> Resolved:
    from .. import paths
    from ..git.refs import path_problem, ref_problem
    from ..git.worktrees import MAX_MESSAGE

    spec = data["git"]
    at = ctx.base + ("git",)
    given = [a for a in ACTIONS if a in spec]  # the schema asks for at least one
    action = given[0]
    if len(given) > 1:
        ctx.err(f"git step '{sid}' does more than one thing: {' and '.join(given)}", at + (given[1],),
                "a git step does one thing: tag, branch or commit; split it into two steps")
        return Resolved(None)
    ok = True
    name, found = "", []
    if action in ("tag", "branch"):
        name = ctx.render(spec[action], at + (action,))
        if name is None:
            ok = False
        else:
            problem = ref_problem(name)
            if problem:
                ctx.err(f"{action} '{shown(name)}' {problem}", at + (action,),
                        f"a {action} name such as "
                        f"{'v1.2 or release/${{ params.version }}' if action == 'tag' else 'release/1.x'}"
                        ": git's rules, no leading '-', no '..', spaces or control characters")
                ok = False
    else:
        raw = spec["commit"]
        for i, text in enumerate([raw] if isinstance(raw, str) else raw):
            where = at + ("commit",) + (() if isinstance(raw, str) else (i,))
            rendered = ctx.render(text, where)
            if rendered is None or paths.lexical_problem(rendered):
                ok = False  # said where the step's inputs are checked (resolve/shape.py)
                continue
            norm = paths.normalize(rendered)
            problem = path_problem(norm) if norm else None
            if problem is None and paths.is_glob(norm):
                problem = "is a glob; a commit names files or folders"
            if problem:
                ctx.err(f"path '{shown(rendered)}' {problem}", where,
                        "name files or folders (ending in /) of the target's worktree, "
                        "relative to the project")
                ok = False
                continue
            if norm:
                found.append(norm)
        if not data.get("target"):
            ctx.err(f"step '{sid}' commits without `target:`", at + ("commit",),
                    "add `target: NAME`: a commit is made on a target's branch, in its worktree; "
                    "committing in your checkout would touch your index")
            ok = False
    message = ""
    if "message" in spec:
        if action == "branch":
            ctx.err("a branch has no message", at + ("message",),
                    "remove `message:`; it is for an annotated tag or a commit")
            ok = False
        else:
            message = ctx.render(spec["message"], at + ("message",))
            if message is None:
                ok = False
            elif "\0" in message or not message.strip():
                ctx.err("the message is empty" if "\0" not in message else "the message holds a NUL byte",
                        at + ("message",), "write a short text")
                ok = False
            elif len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
                ctx.err(f"the message is longer than {MAX_MESSAGE} bytes", at + ("message",),
                        "shorten it")
                ok = False
    if not ok:
        return Resolved(None)
    return Resolved(GitConfig(action, name or "", tuple(dict.fromkeys(found)), message or ""), texts=())


def execute(step, ctx, cancel) -> StepResult:
    from .. import targets
    from ..git import GitProblem
    from ..git import worktrees as git

    cfg: GitConfig = step.config
    cancel.check()
    target = ctx.pipeline.target(step.target) if step.target else None
    try:
        if cfg.action == "commit":
            wt = targets.worktree(ctx.root, target.name)
            prefix = targets.path_prefix(target.name, target.subdir)
            files = [targets.in_worktree(target, prefix + p) for p in cfg.paths]
            sha = git.commit_paths(wt, files, cfg.message or f"amelia: {step.id}",
                                   target.author or None)
            listed = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            ctx.progress(step.id, f"committed {listed} on {target.branch} at {sha[:7]}"
                         if sha else f"nothing to commit on {target.branch}")
            return StepResult()
        if target is not None:
            if ctx.commit_target is not None:  # what the run made on the target so far
                ctx.commit_target(target.name)
            where = targets.worktree(ctx.root, target.name)
            on = f"{target.branch}'s head"
        else:
            where = git.repo_root(ctx.root)
            if where is None:
                raise StepError(f"{ctx.root} is not in a git repository",
                                hint=f"run `git init` and commit first: a {cfg.action} names a commit")
            on = "HEAD"
        sha = git.head_sha(where)
        cancel.check()
        if cfg.action == "tag":
            made = git.create_tag(where, cfg.name, sha, cfg.message or None)
        else:
            made = git.create_branch(where, cfg.name, sha)
    except GitProblem as e:
        raise StepError(e.message, hint=e.hint) from None
    what = "tagged" if cfg.action == "tag" else "branched"
    ctx.progress(step.id, f"{what} {cfg.name} at {sha[:7]} ({on})" if made else
                 f"{cfg.action} {cfg.name} already at {sha[:7]} ({on})")
    return StepResult()
