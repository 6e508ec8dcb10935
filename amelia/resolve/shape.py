"""A step's shape: its kind, what it needs, the paths it reads and writes, checked.

Also the check across steps that each file is written by one step only.
"""

from __future__ import annotations

import bisect

from dataclasses import dataclass, field

from .. import features, paths
from ..errors import shown
from ..steps import kind_of


@dataclass
class Shaped:
    """One usable step: its kind and normalised paths, and where each was written."""

    id: str  # in the pipeline (namespaced in an included document)
    local: str  # in its document
    doc: object  # Document
    kind: str
    needs: list  # step ids as written
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    input_paths: list = field(default_factory=list)  # key path of each input
    output_paths: list = field(default_factory=list)
    # Each path as it is on disk: symlinks in the project resolved (paths.real_pattern),
    # so that two names of one file are seen to be one.
    real_inputs: list = field(default_factory=list)
    real_outputs: list = field(default_factory=list)
    path_errors: bool = False  # an output did not resolve (reported already)
    item: object = None  # the foreach item of an instance (resolve.foreach.Item)
    depfile: str = ""  # the Make-format file the step writes (normalised), or ""
    exclude: list = field(default_factory=list)  # patterns its input globs leave out (a source's)
    target: str = ""  # the git target it runs in: its paths are under the worktree (retarget)

    @property
    def data(self) -> dict:
        return self.doc.steps()[self.local]

    @property
    def base(self) -> tuple:
        return ("steps", self.local)


def shape(doc, local: str, root: str, refs, err, memo: dict | None = None, item=None) -> Shaped | None:
    """Kind, needs, inputs and outputs of one step, checked; None if unusable.

    refs: the document's References (paths may use params and the name); err reports;
    memo: directory → real path, shared by the steps of a pipeline (paths.real_pattern);
    item: the foreach item of an instance (its id is NAME[KEY]; its paths may use it).
    """
    data = doc.steps()[local]
    base = ("steps", local)
    kinds = kind_of(data)
    if not kinds:
        err(f"step '{local}' does nothing", base,
            "give it `run:` (a command) or `agent:` with `prompt:` (an LLM call)")
        return None
    if len(kinds) > 1:
        err(f"step '{local}' does more than one thing: {' and '.join(kinds)}", base + (kinds[1],),
            "a step does exactly one thing; split it into two steps")
        return None
    kind = kinds[0]
    unavailable = features.kind_key(kind)
    if unavailable:
        err(unavailable.message(), base + (kind,), unavailable.hint)
        return None
    if "output" in data and "outputs" in data:
        err(f"step '{local}' has both `output` and `outputs`", base + ("outputs",),
            "use `output` for one file or `outputs` for several")
    needs = data.get("needs") or []
    needs = [needs] if isinstance(needs, str) else list(needs)
    raw_inputs = data.get("inputs") or []
    raw_inputs = [raw_inputs] if isinstance(raw_inputs, str) else list(raw_inputs)
    raw_outputs = [data["output"]] if "output" in data else list(data.get("outputs") or [])
    if item is not None:
        from .foreach import instance_id

        refs = refs.bound(item)
    sid = doc.step_id(local) if item is None else instance_id(doc.step_id(local), item.key)
    s = Shaped(sid, local, doc, kind, needs, item=item)
    memo = {} if memo is None else memo
    for name, raw, into, where, real in (
            ("inputs", raw_inputs, s.inputs, s.input_paths, s.real_inputs),
            ("outputs", raw_outputs, s.outputs, s.output_paths, s.real_outputs)):
        single = name == "outputs" and "output" in data
        for i, text in enumerate(raw):
            p = base + (("output",) if single else (name, i) if isinstance(data.get(name), list) else (name,))
            found = _path(text, p, name == "outputs", root, refs, err, memo)
            if found is not None:
                into.append(found[0])
                where.append(p)
                real.append(found[1])
    s.path_errors = len(s.outputs) != len(raw_outputs)
    if kind == "git" and isinstance(data.get("git"), dict) and data["git"].get("commit"):
        # A commit step reads the files it commits: it runs again when they change.
        commit = data["git"]["commit"]
        for i, text in enumerate([commit] if isinstance(commit, str) else commit):
            p = base + ("git", "commit") + (() if isinstance(commit, str) else (i,))
            found = _path(text, p, False, root, refs, err, memo)
            if found is not None:
                s.inputs.append(found[0])
                s.input_paths.append(p)
                s.real_inputs.append(found[1])
    if isinstance(data.get("depfile"), str):  # a file the step writes: confined as outputs are
        found = _path(data["depfile"], base + ("depfile",), True, root, refs, err, memo)
        if found is not None and found[0].endswith("/"):
            err(f"depfile '{found[0]}' names a directory", base + ("depfile",),
                "name the file the command writes, e.g. build/main.d for `cc -MMD -MF build/main.d`")
        elif found is not None and found[0] in s.outputs + s.inputs:
            err(f"depfile '{found[0]}' is also an {'output' if found[0] in s.outputs else 'input'} of "
                f"step '{local}'", base + ("depfile",),
                "the depfile is the compiler's list of what the step read; name a file of its own, e.g. build/main.d")
        elif found is not None:
            s.depfile = found[0]
    _check_own_inputs(s, err)
    return s


def retarget(s: Shaped, name: str, prefix: str) -> None:
    """Put a step's paths under its target's worktree (prefix: targets.path_prefix): what it
    wrote as docs/a.md is the branch's file, .amelia/worktrees/NAME/docs/a.md, for the whole
    engine. Its paths were checked as written, relative to the project root."""
    s.target = name
    for paths_ in (s.inputs, s.outputs, s.real_inputs, s.real_outputs):
        paths_[:] = [prefix + p for p in paths_]


def _check_own_inputs(s: Shaped, err) -> None:
    """No output of a step may hold a file it reads: the step would change its own input
    (never up to date), and a restore of the output would delete or replace that input.
    DVC: "defined as both a dependency and an output"."""
    for o, real_o, p in zip(s.outputs, s.real_outputs, s.output_paths):
        for inp, real_i in zip(s.inputs, s.real_inputs):
            if not (paths.overlaps(inp, o) or paths.overlaps(real_i, real_o)):
                continue
            through = ("" if paths.overlaps(inp, o) else
                       f" (through a symlink: '{o}' is '{real_o}')" if real_o != o else
                       f" (through a symlink: '{inp}' is '{real_i}')")
            if o.rstrip("/") == inp.rstrip("/") or real_o.rstrip("/") == real_i.rstrip("/"):
                what = f"output '{o}' is also an input of step '{s.local}'{through}"
            elif o.endswith("/"):
                what = f"output directory '{o}' holds input '{inp}' of step '{s.local}'{through}"
            else:
                what = f"output '{o}' is read by input '{inp}' of the same step{through}"
            err(what, p, "a step cannot write what it reads (defined as both an input and an output); "
                         "write the output somewhere else")
            break


# The kernel's limit on one argument or environment string (MAX_ARG_STRLEN on Linux: 32
# pages, its NUL included): a longer `bash -c` command fails with E2BIG at exec.
MAX_ARG_BYTES = 128 * 1024 - 1


def check_command(s: Shaped, config, err) -> None:
    """A command the OS can start: a kind whose config has a `command` (a process runs
    it as one argument) gets one no longer than an argument may be. Said at the step's
    kind key, before anything runs, not as E2BIG at exec. (The values of its templates
    travel as environment variables, checked when the step runs.)"""
    command = getattr(config, "command", None)
    if isinstance(command, str) and len(command) * 4 > MAX_ARG_BYTES:
        size = len(command.encode("utf-8", "surrogatepass"))
        if size > MAX_ARG_BYTES:
            err(f"the command of step '{s.local}' is {size // 1024} KiB; the system runs commands of "
                f"at most {(MAX_ARG_BYTES + 1) // 1024} KiB", s.base + (s.kind,),
                f"move the command into a script file and run that, e.g. run: bash scripts/{s.local}.sh")


def _path(text: str, p: tuple, output: bool, root: str, refs, err, memo: dict) -> tuple | None:
    """(normalised path, its real form) of one input or output; None after an error."""
    rendered = refs.render_path(text, p)
    if rendered is None:
        return None
    hint = "paths are relative to the project root and stay inside it"
    problem = paths.lexical_problem(rendered)
    if problem:
        err(f"path '{shown(rendered)}' {problem}", p, hint)
        return None
    norm = paths.normalize(rendered)
    real = paths.real_pattern(norm, root, memo) if norm else norm
    if real is None:
        err(f"path '{shown(rendered)}' {paths.SYMLINK_ESCAPE}", p, hint)
        return None
    problem = None if output else paths.glob_problem(norm)
    if problem:
        err(f"input '{norm}' {problem}", p, "a class names its range from low to high, e.g. [a-z]")
        return None
    if not norm:
        err("path names the project root itself", p, "name a file or a directory below it")
        return None
    if output and paths.is_glob(norm):
        err(f"output '{norm}' is a glob", p, "outputs name files or directories (ending in /)")
        return None
    if output and norm.split("/")[0] in paths.SKIP_DIRS:
        err(f"output '{norm}' is inside {norm.split('/')[0]}/", p,
            "amelia's store and git's own files are not outputs")
        return None
    return norm, real




def check_output_clashes(shaped: dict, problems) -> None:
    """Each file is written by one step: no equal outputs, none inside another's directory,
    compared as they are on disk (b/x and a/x clash when b -> a).

    Every output is indexed once (its real name; the sorted names for what lies below a
    directory); each is then checked against the outputs before it through the index (its
    name, the directories above it, the names below it), in time linear in the outputs
    and the clashes. The clash reported is with the first of them in file order."""
    entries = []  # (position, Shaped, output, key path, real output)
    owner: dict = {}  # real output without "/" → [entry]
    for s in shaped.values():
        for o, p, r in zip(s.outputs, s.output_paths, s.real_outputs):
            e = (len(entries), s, o, p, r)
            entries.append(e)
            owner.setdefault(r.rstrip("/"), []).append(e)
    names = sorted(owner)
    for pos, s, o, p, r in entries:
        mine = r.rstrip("/")
        found = [e for e in owner[mine] if e[0] < pos]
        parts = mine.split("/")
        for i in range(1, len(parts)):
            found += [e for e in owner.get("/".join(parts[:i]), ()) if e[4].endswith("/") and e[0] < pos]
        if r.endswith("/"):
            for i in range(bisect.bisect_left(names, mine + "/"), len(names)):
                if not names[i].startswith(mine + "/"):
                    break
                found += [e for e in owner[names[i]] if e[0] < pos]
        if not found:
            continue
        _, other, other_out, other_p, other_r = min(found, key=lambda e: e[0])
        err = problems.reporter(s.doc)
        who = "the same step" if other is s else f"step '{other.id}'"
        line = other.doc.source.locate(other_p).line
        through = (f" (through a symlink: '{o}' is '{r}')" if r != o else
                   f" (through a symlink: '{other_out}' is '{other_r}')" if other_r != other_out else "")
        if mine == other_r.rstrip("/"):
            err(f"output '{o}' is also written by {who}{through}", p,
                f"each file is written by one step only (see line {line})")
        elif other_r.endswith("/"):
            err(f"output '{o}' is inside '{other_out}', an output directory of {who}{through}", p,
                f"a directory output owns everything below it (see line {line})")
        else:
            err(f"output directory '{o}' contains '{other_out}', an output of {who}{through}", p,
                f"a directory output owns everything below it (see line {line})")
