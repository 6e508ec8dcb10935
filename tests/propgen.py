"""Seeded random pipelines and edits for the incremental-build property test.

A generated project holds sources under src/, one amelia.yaml whose `run:` steps
write under out/, and in some cases a params.yaml read through `params_files:`: every
output is a deterministic function of the step's declared inputs, params (listed or
templated) and command, so a clean run from scratch defines what an incremental run
must leave. Output paths that follow a param, foreach instances over files that come
and go, and steps that are removed leave orphans, which amelia must remove; one that
holds bytes written by hand is kept (documented), so no edit orphans such a file
before a run has put the output back. Everything is drawn from one random.Random, so a
seed replays a case (all but the moment a signal lands in a run stopped part way).

Two modes. "core" draws nothing that issue 10's items 1 and 4 are about, and its test
does not hold `run --check` to item 5 (exit 3 when a restore is due). "hardening" adds
steps that stop writing a file (a filter over a directory, a file written only under
a condition), deletes files that a directory output maps, and flips a byte of a
stored object before its output must be restored.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

CORE, HARDENING = "core", "hardening"

# Source groups: the globs steps read. In core mode nothing in group "b" is ever
# deleted, and directory outputs map only group b (a deleted file there would leave
# a stale file in the directory output: issue item 1).
GROUPS = {"a": ("src/a", "txt"), "b": ("src/b", "md")}
COND_FILE = "src/cond.txt"  # read by the conditional step; never deleted
CONF_FILE = "src/conf.txt"  # a literal input; never deleted
WORDS = ("1", "yes", "no", "apple", "Beta", "zeta", "x y", "", "10", "Yes")
TRANSFORMS = ("cat", "tr a-z A-Z", "sort", "sort -r", "rev", "tr -d aeiou", "tac")
PARAM_VALUES = {
    "word": ("alpha", "beta", "gamma delta", "x'y", "$HOME", ""),
    "n": (0, 1, 2, 3),
    "flag": (True, False),
    "lang": ("en", "fr", "de"),  # used in output paths: a change leaves an orphan
}
PARAMS_FILE = "params.yaml"  # at the root, read by `params_files:` in some pipelines
# Its keys: cfg.a.b is listed under `params:` by "pfile" steps, which read it from the
# file themselves; cfg.c is templated by "pleaf" steps; `other` is read by no step.
FILE_VALUES = {"b": ("v1", "v2", "v3 w"), "c": (0, 1, 2), "other": ("o1", "o2", "o3")}
# How a "pfile" step reads cfg.a.b from params.yaml (the only key indented 4 with name b).
FILE_READERS = ("sed -n 's/^    b: //p' params.yaml", "awk '/^    b:/ {print $2}' params.yaml",
                "grep -E '^ {4}b:' params.yaml")
# The globs a foreach step iterates over: group a, or every .txt under src/ (cond, conf).
EACH_GLOBS = ("src/a/*.txt", "src/*.txt", "src/**/*.txt")
PREFIX = "shopt -s nullglob; export LC_ALL=C; mkdir -p out; "


@dataclass(frozen=True)
class Source:
    """What a step reads: its amelia input pattern and the shell words that expand to
    the same files."""

    pattern: str
    shell: str
    group: str = ""  # the source group, or "" for another step's output
    producer: str = ""  # the step whose output this is


@dataclass(frozen=True)
class Step:
    id: str
    kind: str  # concat | count | param | ref | permap | filter | cond | poutput | each | pfile | pleaf
    sources: tuple = ()  # Source
    transform: int = 0
    cosmetic: int = 0  # a no-op prefix: the command changes, its outputs do not
    needs: tuple = ()
    ref: str = ""  # the step whose output `ref` reads through ${{ steps.X.output }}
    nested: bool = False  # permap: one folder per input file instead of one file
    always: bool = False  # `always: true`: runs on every run
    reader: int = 0  # pfile: which of FILE_READERS
    fragile: bool = False  # poutput, each: fails, its output written, when an input holds "zeta"

    @property
    def output(self) -> str:
        """What readers see: a file, a directory output (ending in /), the folder that
        holds a foreach step's outputs, or a path with ${{ params.lang }} in it."""
        if self.kind in ("permap", "filter", "each"):
            return f"out/{self.id}/"
        if self.kind == "poutput":
            return f"out/{self.id}-${{{{ params.lang }}}}.txt"
        return f"out/{self.id}.txt"

    @property
    def is_dir(self) -> bool:
        """A declared directory output (a foreach step declares one file per item)."""
        return self.kind in ("permap", "filter")

    def owns(self, rel: str) -> bool:
        """rel is (under) one of this step's outputs, whatever the params and items."""
        if self.kind == "poutput":
            return rel.startswith(f"out/{self.id}-")
        if self.output.endswith("/"):
            return rel.startswith(self.output)
        return rel == self.output

    def command(self) -> str:
        t = TRANSFORMS[self.transform]
        words = " ".join(s.shell for s in self.sources)
        cmd = PREFIX + (f": cosmetic {self.cosmetic}; " if self.cosmetic else "")
        if self.kind == "concat":
            return cmd + f"cat /dev/null {words} | {t} > out/{self.id}.txt"
        if self.kind == "count":
            return cmd + (f'for f in {words}; do printf \'%s %s\\n\' "${{f##*/}}" "$(wc -c < "$f")"; '
                          f"done | {t} > out/{self.id}.txt")
        if self.kind == "param":
            return cmd + (f"{{ printf '%s|%s|%s\\n' \"${{{{ params.word }}}}\" \"${{{{ params.n }}}}\" "
                          f"\"${{{{ params.flag }}}}\"; cat /dev/null {words}; }} | {t} > out/{self.id}.txt")
        if self.kind == "ref":
            return cmd + (f"{{ printf '%s\\n' \"${{{{ steps.{self.ref}.output }}}}\"; cat {CONF_FILE}; }} "
                          f"| {t} > out/{self.id}.txt")
        if self.kind == "cond":  # writes its output only if the condition holds: item 1
            return cmd + (f'if grep -q yes {COND_FILE} && [ "${{{{ params.flag }}}}" = true ]; then '
                          f"{t} < {COND_FILE} > out/{self.id}.txt; fi")
        if self.kind == "permap":
            dest = (f'"out/{self.id}/${{f##*/}}/data"' if self.nested else f'"out/{self.id}/${{f##*/}}"')
            mk = f'mkdir -p "out/{self.id}/${{f##*/}}"; ' if self.nested else ""
            return cmd + f"mkdir -p out/{self.id}; for f in {words}; do {mk}{t} < \"$f\" > {dest}; done"
        if self.kind == "filter":  # a file stops being written when its input loses the "1": item 1
            return cmd + (f"mkdir -p out/{self.id}; for f in {words}; do if grep -q 1 \"$f\"; then "
                          f"{t} < \"$f\" > \"out/{self.id}/${{f##*/}}\"; fi; done")
        if self.kind == "poutput":  # the output path follows a param: a change orphans the old file
            return cmd + (f"{{ printf '%s\\n' \"${{{{ params.lang }}}}\"; cat /dev/null {words}; }} "
                          f"| {t} > \"out/{self.id}-${{{{ params.lang }}}}.txt\"" + self._fail(words))
        if self.kind == "each":  # one instance per file: a deleted file orphans its output
            return cmd + (f"mkdir -p out/{self.id}; {{ printf '%s %s\\n' \"${{{{ item.name }}}}\" "
                          f"\"${{{{ item.dir }}}}\"; cat \"${{{{ item.path }}}}\"; }} | {t} "
                          f"> \"out/{self.id}/${{{{ item.stem }}}}.txt\""
                          + self._fail('"${{ item.path }}"'))
        if self.kind == "pfile":  # lists cfg.a.b under params: and reads it from the file itself
            return cmd + (f"{{ {FILE_READERS[self.reader]}; cat /dev/null {words}; }} "
                          f"| {t} > out/{self.id}.txt")
        if self.kind == "pleaf":  # a leaf of the params file, templated
            return cmd + (f"{{ printf '%s\\n' \"${{{{ params.cfg.c }}}}\"; cat /dev/null {words}; }} "
                          f"| {t} > out/{self.id}.txt")
        raise ValueError(self.kind)

    def _fail(self, words: str) -> str:
        """A failure after the output is written: what a failed run leaves behind must
        not outlive the declaration of that output (a clean run never wrote it)."""
        return f"; if grep -qx zeta /dev/null {words}; then exit 1; fi" if self.fragile else ""

    def declared(self) -> str:
        """The output as the pipeline file declares it."""
        if self.kind == "each":
            return f"out/{self.id}/${{{{ item.stem }}}}.txt"
        return self.output

    def inputs(self) -> list:
        if self.kind == "each":
            return ["${{ item.path }}"]
        out = [s.pattern for s in self.sources]
        if self.kind == "ref":
            out.append(CONF_FILE)
        if self.kind == "cond":
            out.append(COND_FILE)
        return out


@dataclass(frozen=True)
class Pipeline:
    steps: tuple  # Step, in topological order
    params: dict = field(default_factory=dict)  # name → default (of those declared in the file)
    params_file: bool = False  # `params_files: [params.yaml]`
    file_keys: tuple = ()  # params of PARAM_VALUES that live in params.yaml, not under params:

    def render(self) -> str:
        lines = ["amelia: 1", "name: prop"]
        if self.params_file:
            lines.append(f"params_files: [{PARAMS_FILE}]")
        lines.append("params:")
        types = {"word": "string", "n": "integer", "flag": "boolean", "lang": "string"}
        for name, default in self.params.items():
            if name not in self.file_keys:
                lines.append(f"  {name}: {{type: {types[name]}, default: {json.dumps(default)}}}")
        lines.append("steps:")
        for s in self.steps:
            lines.append(f"  {s.id}:")
            if s.kind == "each":
                lines.append(f"    foreach: {{glob: {json.dumps(s.sources[0].pattern)}}}")
            lines.append(f"    run: {json.dumps(s.command())}")
            if s.inputs():
                lines.append(f"    inputs: {json.dumps(s.inputs())}")
            key = "outputs" if s.is_dir else "output"
            lines.append(f"    {key}: {json.dumps([s.output] if key == 'outputs' else s.declared())}")
            if s.needs:
                lines.append(f"    needs: {json.dumps(list(s.needs))}")
            if s.kind == "pfile":
                lines.append('    params: ["cfg.a.b"]')
            if s.always:
                lines.append("    always: true")
        return "\n".join(lines) + "\n"

    def step(self, sid: str) -> Step:
        return next(s for s in self.steps if s.id == sid)

    def with_step(self, new: Step) -> Pipeline:
        return replace(self, steps=tuple(new if s.id == new.id else s for s in self.steps))


# -- generation ------------------------------------------------------------------------

def random_text(rng: random.Random) -> str:
    lines = [rng.choice(WORDS) for _ in range(rng.randint(0, 4))]
    text = "\n".join(lines)
    return text + ("\n" if lines and rng.random() < 0.8 else "")


def _group_source(rng: random.Random, g: str) -> Source:
    folder, ext = GROUPS[g]
    # Three spellings of the same files: a glob, the folder, a glob across folders
    # (only this group's files have this extension).
    pattern = rng.choice((f"{folder}/*.{ext}", f"{folder}/", f"src/**/*.{ext}"))
    return Source(pattern, f"{folder}/*.{ext}", group=g)


def _upstream_source(rng: random.Random, up: Step) -> Source:
    if up.kind == "poutput":  # by the path with the param in it, or by a glob
        if rng.random() < 0.5:
            return Source(up.output, f'"{up.output}"', producer=up.id)
        return Source(f"out/{up.id}-*.txt", f"out/{up.id}-*.txt", producer=up.id)
    if up.kind == "each":  # the instances' outputs; out/sN/ is no declared output
        return Source(f"out/{up.id}/*.txt", f"out/{up.id}/*.txt", producer=up.id)
    if not up.output.endswith("/"):
        return Source(up.output, up.output, producer=up.id)
    folder = up.output.rstrip("/")
    if up.nested:  # files in subfolders, all named "data": read them with find
        return Source(up.output, f"$(find {folder} -type f | sort)", producer=up.id)
    # Both spellings of "every file of that directory".
    pattern = up.output if rng.random() < 0.5 else f"{folder}/*"
    return Source(pattern, f"{folder}/*", producer=up.id)


def generate(rng: random.Random, mode: str) -> Pipeline:
    """A DAG of 2-8 steps; each reads sources and/or earlier steps' outputs. Some
    pipelines read params.yaml (`params_files:`)."""
    params_file = rng.random() < 0.4
    kinds = ["concat", "count", "param", "ref", "permap", "poutput", "each"]
    if mode == HARDENING:
        kinds += ["filter", "cond"]
    if params_file:
        kinds += ["pfile", "pleaf"]
    steps: list = []
    n = rng.randint(2, 8)
    while len(steps) < n:
        sid = f"s{len(steps)}"
        kind = rng.choice(kinds)
        files = [s for s in steps if not s.output.endswith("/")]
        if kind == "ref" and not files:
            kind = "concat"
        step = Step(sid, kind, transform=rng.randrange(len(TRANSFORMS)), always=rng.random() < 0.1,
                    fragile=kind in ("poutput", "each") and rng.random() < 0.4)
        if kind in ("permap", "filter"):
            # One flat source, so the files it writes have distinct names.
            flat_dirs = [s for s in steps if s.output.endswith("/") and not s.nested
                         and (mode == HARDENING or _only_group_b(s, steps))]
            if flat_dirs and rng.random() < 0.5:
                src = _upstream_source(rng, rng.choice(flat_dirs))
            else:
                src = _group_source(rng, "b" if mode == CORE else rng.choice("ab"))
            step = replace(step, sources=(src,), nested=kind == "permap" and rng.random() < 0.25)
        elif kind == "ref":
            step = replace(step, ref=rng.choice(files).id)
        elif kind == "each":  # a glob of files that edits add, delete and rename
            glob = rng.choice(EACH_GLOBS)
            step = replace(step, sources=(Source(glob, glob, group="a"),))
        elif kind != "cond":
            chosen = []
            for _ in range(rng.randint(1, 2)):
                if steps and rng.random() < 0.6:
                    chosen.append(_upstream_source(rng, rng.choice(steps)))
                else:
                    chosen.append(_group_source(rng, rng.choice("ab")) if rng.random() < 0.8
                                  else Source(CONF_FILE, CONF_FILE, group="conf"))
            step = replace(step, sources=tuple(dict.fromkeys(chosen)),
                           reader=rng.randrange(len(FILE_READERS)))
        if steps and rng.random() < 0.2:  # ordering only: not part of any key
            step = replace(step, needs=(rng.choice(steps).id,))
        # A reader of a foreach step's outputs mostly names it in needs (as the docs
        # show), else relies on its inputs overlapping the instances' outputs.
        each_ups = [src.producer for src in step.sources
                    if src.producer and next(s for s in steps if s.id == src.producer).kind == "each"]
        if each_ups and rng.random() < 0.7:
            step = replace(step, needs=tuple(dict.fromkeys((*step.needs, *each_ups))))
        steps.append(step)
        if kind == "each" and len(steps) < n and rng.random() < 0.5:  # gather what it wrote
            steps.append(Step(f"s{len(steps)}", "concat", transform=rng.randrange(len(TRANSFORMS)),
                              sources=(_upstream_source(rng, step),), needs=(step.id,)))
    params = {name: rng.choice(values) for name, values in PARAM_VALUES.items()}
    file_keys = ("lang",) if params_file and rng.random() < 0.5 else ()
    return Pipeline(tuple(steps), params, params_file, file_keys)


def _only_group_b(step: Step, steps: list) -> bool:
    """A directory output fed (transitively) from group b only: nothing it maps is deleted."""
    by_id = {s.id: s for s in steps}
    for src in step.sources:
        if src.producer:
            if not _only_group_b(by_id[src.producer], steps):
                return False
        elif src.group != "b":
            return False
    return True


def initial_sources(rng: random.Random) -> dict:
    files = {COND_FILE: rng.choice(("yes\n", "no\n")), CONF_FILE: random_text(rng)}
    for g, (folder, ext) in GROUPS.items():
        for i in range(rng.randint(1, 3)):
            files[f"{folder}/f{i}.{ext}"] = random_text(rng)
    return files


def initial_params_file(rng: random.Random, pipeline: Pipeline) -> dict:
    """params.yaml's data, in the order written: cfg.a.b, cfg.c, other, and maybe lang."""
    data = {"cfg": {"a": {"b": rng.choice(FILE_VALUES["b"])}, "c": rng.choice(FILE_VALUES["c"])},
            "other": rng.choice(FILE_VALUES["other"])}
    for name in pipeline.file_keys:
        data[name] = pipeline.params[name]
    return data


def render_params_file(data: dict, comments: int) -> str:
    """YAML written by hand: comments on top, cfg.a.b the only key indented 4 named b."""
    lines = [f"# note {i}" for i in range(comments)]
    for key, value in data.items():
        if key != "cfg":
            lines.append(f"{key}: {json.dumps(value)}")
            continue
        lines.append("cfg:")
        for sub, v in value.items():
            if sub == "a":
                lines += ["  a:", f"    b: {json.dumps(v['b'])}"]
            else:
                lines.append(f"  {sub}: {json.dumps(v)}")
    return "\n".join(lines) + "\n"


# -- running -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """One `amelia run`: its exit code, each step's outcome, and what it did."""

    code: int
    stdout: str
    stderr: str
    statuses: dict  # step → ok | failed | skipped
    ran: tuple = ()  # steps that ran (and succeeded or failed)
    restored: tuple = ()  # outputs put back from the store
    removed: tuple = ()  # outputs no step writes any more, removed before the run


RESTORED = ("output_missing", "output_edited")  # reasons of a cached step whose outputs were put back


def amelia(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "amelia", *args], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result_of(proc: subprocess.Popen) -> Result:
    """Wait for `amelia run --json` and read its events."""
    out, err = proc.communicate(timeout=120)
    statuses, ran, restored, removed = {}, [], [], []
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        kind, step = e.get("type"), e.get("step")
        if kind == "step_cached":
            statuses[step] = "ok"
            restored += [r["subject"] for r in e.get("reasons", ()) if r.get("kind") in RESTORED]
        elif kind == "step_completed":
            statuses[step] = "ok"
            ran.append(step)
        elif kind == "step_failed":
            statuses[step] = "failed"
            ran.append(step)
        elif kind == "step_skipped":
            statuses[step] = "skipped"
        elif kind == "output_removed":
            removed.append(e["path"])
    return Result(proc.returncode, out, err, statuses, tuple(ran), tuple(restored), tuple(removed))


def param_args(cli_params: dict) -> list:
    out = []
    for name, value in sorted(cli_params.items()):
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        out += ["-p", f"{name}={text}"]
    return out


def files_of(root: Path) -> dict:
    """Every file under root but .amelia/: relative path → bytes."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".amelia"]
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full):  # a dangling link reads as no file
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            with open(full, "rb") as f:
                out[rel] = f.read()
    return out


def copy_sources(src: Path, dst: Path) -> None:
    """The project as a fresh clone would have it: the pipeline file, params.yaml, src/."""
    dst.mkdir(parents=True)
    shutil.copy2(src / "amelia.yaml", dst / "amelia.yaml")
    if (src / PARAMS_FILE).exists():
        shutil.copy2(src / PARAMS_FILE, dst / PARAMS_FILE)
    if (src / "src").exists():
        shutil.copytree(src / "src", dst / "src", symlinks=True)  # links stay links, as in git


def source_digest(root: Path, cli_params: dict) -> str:
    """What a clean run's result depends on: the pipeline, params.yaml, src/ and the -p values."""
    h = hashlib.sha256(json.dumps(param_args(cli_params)).encode())
    h.update((root / "amelia.yaml").read_bytes())
    if (root / PARAMS_FILE).exists():
        h.update(b"\0params\0" + (root / PARAMS_FILE).read_bytes())
    for rel, data in sorted(files_of(root / "src").items()):
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    for link in sorted((root / "src").rglob("*")):  # a dangling link is no file, yet is there
        if link.is_symlink():
            h.update(f"{link.relative_to(root)} -> {os.readlink(link)}".encode())
    return h.hexdigest()


# -- edits -------------------------------------------------------------------------------

class World:
    """The incremental project, its pipeline, the -p values, and earlier file contents."""

    def __init__(self, root: Path, pipeline: Pipeline, mode: str):
        self.root = root
        self.pipeline = pipeline
        self.mode = mode
        self.cli_params: dict = {}
        self.seen: dict = {}  # source path → contents it has had, for reverts
        self.pfile: dict = {}  # params.yaml's data, if the pipeline reads it
        self.comments = 0  # comment lines on top of params.yaml
        self.hand: dict = {}  # output path → the bytes written there by hand

    def write_pipeline(self) -> None:
        (self.root / "amelia.yaml").write_text(self.pipeline.render())

    def write_params_file(self, in_place: bool = False) -> None:
        text = render_params_file(self.pfile, self.comments)
        p = self.root / PARAMS_FILE
        if in_place:
            p.write_text(text)
        else:
            p.with_name(PARAMS_FILE + ".tmp").write_text(text)
            os.replace(p.with_name(PARAMS_FILE + ".tmp"), p)

    def param(self, name: str):
        """The value a run sees now: -p, else params.yaml, else the declared default."""
        if name in self.cli_params:
            return self.cli_params[name]
        if name in self.pipeline.file_keys:
            return self.pfile[name]
        return self.pipeline.params[name]

    def hand_made(self, rel: str) -> bool:
        """rel holds bytes written there by hand: amelia must keep it if no step declares
        it any more (docs: "one edited since is yours and stays"), unlike a clean run."""
        p = self.root / rel
        return rel in self.hand and p.is_file() and not p.is_symlink() and p.read_bytes() == self.hand[rel]

    def held(self) -> set:
        """Steps with an output (or a file in a directory output) written by hand: no edit
        may stop declaring it before a run has put it back."""
        return {s.id for s, rel in self.outputs() if self.hand_made(rel)}

    def instance_outputs(self, src: str) -> list:
        """The outputs of the foreach instances that the source file src makes."""
        folder, name = src.rsplit("/", 1)
        stem = name.rsplit(".", 1)[0]
        out = []
        for s in self.pipeline.steps:
            if s.kind == "each" and name.endswith(".txt") and _each_matches(s.sources[0].pattern, folder):
                out.append(f"out/{s.id}/{stem}.txt")
        return out

    def write(self, rel: str, text: str, in_place: bool = False) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if in_place:  # the same inode, as `>` in a shell
            p.write_text(text)
        else:  # a new inode, as editors that save by rename
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, p)
        self.seen.setdefault(rel, []).append(text)

    def sources(self) -> list:
        return ["src/" + rel for rel in sorted(files_of(self.root / "src"))]

    def deletable(self) -> list:
        keep = (COND_FILE, CONF_FILE)
        out = [p for p in self.sources() if p not in keep]
        if self.mode == CORE:  # group b feeds directory outputs: item 1
            out = [p for p in out if not p.startswith(GROUPS["b"][0] + "/")]
        # Deleting a source drops its foreach instances: not while one's output is hand-made.
        return [p for p in out if not any(self.hand_made(o) for o in self.instance_outputs(p))]

    def outputs(self) -> list:
        """Output files on disk now, with the step they belong to."""
        out = []
        for s in self.pipeline.steps:
            rel = f"out/{s.id}-{self.param('lang')}.txt" if s.kind == "poutput" else s.output.rstrip("/")
            full = self.root / rel
            if full.is_dir():
                out += [(s, str(p.relative_to(self.root))) for p in sorted(full.rglob("*")) if p.is_file()]
            elif full.is_file():
                out.append((s, rel))
        return out


def _each_matches(glob: str, folder: str) -> bool:
    """A .txt file in folder matches a foreach glob of EACH_GLOBS."""
    if glob == "src/**/*.txt":
        return folder == "src" or folder.startswith("src/")
    return folder == glob.rsplit("/", 1)[0]


def edit_source(rng, w: World) -> str:
    rel = rng.choice(w.sources())
    if rel == COND_FILE:
        text = rng.choice(("yes\n", "no\n", "yes yes\n"))
    else:
        text = random_text(rng)
    in_place = rng.random() < 0.5
    w.write(rel, text, in_place)
    return f"write {rel} {text!r}" + (" in place" if in_place else "")


def touch_source(rng, w: World) -> str:
    rel = rng.choice(w.sources())
    p = w.root / rel
    st = p.stat()
    bump = rng.choice((1, 1_000, 10**9))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + bump))
    return f"touch {rel} (mtime +{bump} ns)"


def rewrite_same(rng, w: World) -> str:
    rel = rng.choice(w.sources())
    w.write(rel, (w.root / rel).read_text())
    return f"rewrite {rel} with the same bytes (new inode)"


def revert_source(rng, w: World) -> str:
    choices = [(rel, texts) for rel, texts in w.seen.items() if len(texts) > 1 and (w.root / rel).exists()]
    if not choices:
        return edit_source(rng, w)
    rel, texts = rng.choice(sorted(choices))
    text = rng.choice(texts[:-1])
    w.write(rel, text)
    return f"revert {rel} to an earlier {text!r}"


def add_source(rng, w: World) -> str:
    g = rng.choice(sorted(GROUPS))
    folder, ext = GROUPS[g]
    rel = f"{folder}/n{rng.randrange(100)}.{ext}"
    text = random_text(rng)
    w.write(rel, text)
    return f"add {rel} {text!r}"


def delete_source(rng, w: World) -> str:
    choices = w.deletable()
    if not choices:
        return add_source(rng, w)
    rel = rng.choice(choices)
    (w.root / rel).unlink()
    return f"delete {rel}"


def rename_source(rng, w: World) -> str:
    choices = w.deletable()
    if not choices:
        return add_source(rng, w)
    rel = rng.choice(choices)
    folder, name = rel.rsplit("/", 1)
    new = f"{folder}/r{rng.randrange(100)}-{name}"
    os.replace(w.root / rel, w.root / new)
    return f"rename {rel} to {new}"


def link_source(rng, w: World) -> str:
    """Replace a source by a link to another one in its folder (reads as that file)."""
    choices = w.deletable()
    if not choices:
        return add_source(rng, w)
    rel = rng.choice(choices)
    folder = rel.rsplit("/", 1)[0]
    others = [p for p in w.sources() if p.startswith(folder + "/") and p != rel]
    if not others:
        return edit_source(rng, w)
    target = rng.choice(others).rsplit("/", 1)[1]
    (w.root / rel).unlink()
    os.symlink(target, w.root / rel)
    return f"replace {rel} by a link to {target}"


def interrupted_run(rng, w: World) -> str:
    """Change a source, then start a run and stop it part way: by SIGINT or SIGTERM
    (amelia stops its steps), or SIGKILL to it and its steps (a crash). The delay is
    drawn from the seed, but where the run is when it lands is up to the machine."""
    import signal

    what = edit_source(rng, w)
    sig = rng.choice((signal.SIGINT, signal.SIGTERM, signal.SIGKILL))
    delay = rng.uniform(0.1, 1.2)
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "run", *param_args(w.cli_params)], cwd=w.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    if sig == signal.SIGKILL:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    else:
        proc.send_signal(sig)
    proc.wait(timeout=60)
    return f"{what}; a run stopped by {sig.name} after {delay:.2f} s"


def read_only_output(rng, w: World) -> str:
    """chmod a-w an output file: a step that runs again must still replace it."""
    files = [(s, rel) for s, rel in w.outputs() if not (w.root / rel).is_symlink()]
    if not files:
        return touch_source(rng, w)
    _, rel = rng.choice(files)
    os.chmod(w.root / rel, 0o444)
    return f"chmod a-w {rel}"


def set_param(rng, w: World) -> str:
    """A param's value: with -p, or in the file that holds it (amelia.yaml or params.yaml).
    -p never sets cfg.a.b: a step reads it from the file itself (a located error)."""
    names = sorted(PARAM_VALUES) + (["cfg.c", "other"] if w.pipeline.params_file else [])
    name = rng.choice(names)
    if any(s.kind == "poutput" for s in w.pipeline.steps) and rng.random() < 0.3:
        name = "lang"  # moves an output: the old file is an orphan
    if name == "lang" and any(s.kind == "poutput" for s in w.pipeline.steps if s.id in w.held()):
        return edit_source(rng, w)  # the old path would stay: it holds bytes written by hand
    value = rng.choice(PARAM_VALUES.get(name) or FILE_VALUES[name.split(".")[-1]])
    where = rng.random()
    if where < 0.4:
        w.cli_params[name] = value
        return f"-p {name}={value!r} from now on"
    if where < 0.55 and name in w.cli_params:
        del w.cli_params[name]
        return f"stop passing -p {name}"
    if name == "cfg.c":
        w.pfile["cfg"]["c"] = value
    elif name == "other" or name in w.pipeline.file_keys:
        w.pfile[name] = value
    else:
        w.pipeline = replace(w.pipeline, params={**w.pipeline.params, name: value})
        w.write_pipeline()
        return f"param {name} default: {value!r} in amelia.yaml"
    w.write_params_file(in_place=rng.random() < 0.5)
    return f"{name}: {value!r} in {PARAMS_FILE}"


def edit_params_file(rng, w: World) -> str:
    """Change params.yaml: the key "pfile" steps list (cfg.a.b), a key only templated
    or read by no step, a comment, or the order of keys (nothing reads the bytes)."""
    if not w.pipeline.params_file:
        return set_param(rng, w)
    r = rng.random()
    if r < 0.35:
        value = rng.choice(FILE_VALUES["b"])
        w.pfile["cfg"]["a"]["b"] = value
        what = f"cfg.a.b: {value!r}"
    elif r < 0.55:
        return set_param(rng, w)
    elif r < 0.8:
        w.comments = (w.comments + 1) % 3
        what = f"{w.comments} comment lines on top"
    else:
        w.pfile = dict(reversed(w.pfile.items()))
        w.pfile["cfg"] = dict(reversed(w.pfile["cfg"].items()))
        what = f"keys reordered: {list(w.pfile)}"
    in_place = rng.random() < 0.5
    w.write_params_file(in_place)
    return f"{PARAMS_FILE}: {what}" + (" in place" if in_place else "")


def remove_step(rng, w: World) -> str:
    """Drop a step no other step reads or needs: its outputs are orphans."""
    used = {x for s in w.pipeline.steps for x in (*s.needs, s.ref, *(src.producer for src in s.sources))}
    held = w.held()
    choices = [s for s in w.pipeline.steps if s.id not in used and s.id not in held]
    if len(w.pipeline.steps) <= 2 or not choices:
        return change_command(rng, w)
    step = rng.choice(choices)
    w.pipeline = replace(w.pipeline, steps=tuple(s for s in w.pipeline.steps if s.id != step.id))
    w.write_pipeline()
    return f"remove step {step.id}"


def change_command(rng, w: World) -> str:
    step = rng.choice(w.pipeline.steps)
    r = rng.random()
    if r < 0.5:
        new = replace(step, transform=(step.transform + rng.randrange(1, len(TRANSFORMS))) % len(TRANSFORMS))
        what = f"transform {TRANSFORMS[new.transform]!r}"
    elif r < 0.8:
        new = replace(step, cosmetic=step.cosmetic + 1)  # new command, same outputs
        what = "a no-op prefix"
    else:
        earlier = [s.id for s in w.pipeline.steps[:w.pipeline.steps.index(step)]]
        new = replace(step, needs=() if step.needs or not earlier else (rng.choice(earlier),))
        what = f"needs {list(new.needs)}"
    w.pipeline = w.pipeline.with_step(new)
    w.write_pipeline()
    return f"change step {step.id}: {what}"


def delete_output(rng, w: World) -> str:
    outs = w.outputs()
    if not outs:
        return touch_source(rng, w)
    step, rel = rng.choice(outs)
    if step.output.endswith("/") and rng.random() < 0.3:
        shutil.rmtree(w.root / step.output)
        return f"delete output directory {step.output}"
    (w.root / rel).unlink()
    return f"delete output {rel}"


def edit_output(rng, w: World) -> str:
    outs = w.outputs()
    if not outs:
        return touch_source(rng, w)
    step, rel = rng.choice(outs)
    if step.is_dir and w.mode == HARDENING and rng.random() < 0.3:
        rel = step.output + "stray.txt"  # kept if the step runs before it is restored: item 1
        (w.root / rel).write_text("stray\n")
        w.hand[rel] = b"stray\n"
        return f"add a stray file {rel} to a directory output"
    (w.root / rel).write_text("edited by hand\n")
    w.hand[rel] = b"edited by hand\n"
    return f"edit output {rel} by hand"


def corrupt_object(rng, w: World) -> str:
    """Flip one byte of the stored object of an output file, then delete that file so a
    run must restore it (issue item 4)."""
    for step, rel in rng.sample(w.outputs(), len(w.outputs())):
        data = (w.root / rel).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        obj = w.root / ".amelia" / "objects" / digest[:2] / digest[2:]
        if data and obj.is_file():
            raw = bytearray(obj.read_bytes())
            raw[0] ^= 0x20
            os.chmod(obj, 0o644)
            obj.write_bytes(bytes(raw))
            (w.root / rel).unlink()
            return f"flip a byte of the object of {rel}, delete {rel}"
    return delete_output(rng, w)


EDITS = {  # (edit, weight)
    CORE: ((edit_source, 4), (touch_source, 2), (rewrite_same, 1), (revert_source, 2), (add_source, 2),
           (delete_source, 2), (rename_source, 1), (set_param, 2), (change_command, 2),
           (delete_output, 2), (edit_output, 2), (link_source, 1), (interrupted_run, 1),
           (edit_params_file, 2), (remove_step, 1)),
}
# A read-only output is in the way of a step that writes it, unless the step's outputs
# are removed first (item 1).
EDITS[HARDENING] = EDITS[CORE] + ((corrupt_object, 1), (read_only_output, 1))


def random_edit(rng: random.Random, w: World) -> str:
    """One to three changes made before the next run."""
    fns, weights = zip(*EDITS[w.mode])
    n = rng.choices((1, 2, 3), (6, 3, 1))[0]
    return "; ".join(rng.choices(fns, weights)[0](rng, w) for _ in range(n))


def settle(rng: random.Random) -> None:
    """Mostly let mtimes age past amelia's racy window (0.1 s), so its memo is used;
    sometimes edit at once, inside the window."""
    if rng.random() < 0.7:
        time.sleep(0.12)


def run_options(rng: random.Random, pipeline: Pipeline) -> list:
    """-j for an incremental run (the order steps finish in must not matter), and now
    and then --force of a step or of all: a forced step's outputs come out the same."""
    out = ["-j", str(rng.choice((1, 2, 4)))]
    r = rng.random()
    if r < 0.07:
        out.append("--force-all")
    elif r < 0.15:
        out += ["--force", rng.choice(pipeline.steps).id]
    return out


# -- one case: a pipeline, its edits, and the runs after each ----------------------------

def check_case(base: Path, mode: str, seed: int, edits: int):
    """Generate the case `seed`, run it, and yield (kind, report) for each problem.

    kind: traceback | exit | outcomes | files (the incremental run differs from a clean
    one; the case stops there, its state has diverged) | check-run | check-idle |
    check-restore (`run --check` disagrees with what the run then did).
    """
    rng = random.Random(f"{mode}-{seed}")
    root = base / "proj"
    root.mkdir(parents=True)
    w = World(root, generate(rng, mode), mode)
    for rel, text in initial_sources(rng).items():
        w.write(rel, text)
    if w.pipeline.params_file:
        w.pfile = initial_params_file(rng, w.pipeline)
        w.write_params_file()
    w.write_pipeline()
    history: list = []
    first = result_of(amelia(root, "run", "--json"))
    if first.code not in (0, 1) or "Traceback" in first.stderr:
        yield "exit", report(mode, seed, w, history, f"the first run exited {first.code}", first)
        return
    # A clean run's result depends only on the sources: one run per distinct state.
    clean_runs = {source_digest(root, w.cli_params): (first, files_of(root))}
    for i in range(edits):
        settle(rng)
        history.append(random_edit(rng, w))
        args = param_args(w.cli_params)
        digest = source_digest(root, w.cli_params)
        clean_root, clean_proc = base / f"clean-{i}", None
        if digest not in clean_runs:  # runs alongside the incremental one
            copy_sources(root, clean_root)
            clean_proc = amelia(clean_root, "run", "--json", *args)
        check = result_of(amelia(root, "run", "--check", *args))
        options = run_options(rng, w.pipeline)
        history[-1] += f"; then `run {' '.join(options)}`"
        inc = result_of(amelia(root, "run", "--json", *args, *options))
        if clean_proc is not None:
            clean_runs[digest] = (result_of(clean_proc), files_of(clean_root))
            shutil.rmtree(clean_root)
        clean, clean_files = clean_runs[digest]

        def problem(kind, text):
            return kind, report(mode, seed, w, history, text, inc, clean)

        for r in (check, inc, clean):
            if "Traceback" in r.stderr:
                yield problem("traceback", f"a traceback:\n{r.stderr}")
                return
        if inc.code != clean.code:
            yield problem("exit", f"exit {inc.code} incremental, {clean.code} clean")
            return
        if inc.statuses != clean.statuses:
            yield problem("outcomes", f"step outcomes differ: incremental {inc.statuses}, "
                                      f"clean {clean.statuses}")
            return
        # A step skipped after a failure keeps what an earlier run left: not compared.
        skipped = tuple(w.pipeline.step(s.split("[")[0]) for s, st in inc.statuses.items()
                        if st == "skipped")
        diff = differences(_without(files_of(root), skipped), _without(clean_files, skipped))
        if diff:
            yield problem("files", "\n".join(["the incremental run left other files than a clean run:",
                                               *diff]))
            return
        if any(o.startswith("--force") for o in options):  # --check was not asked to force
            continue
        said = "\n".join(check.stdout.splitlines()[-3:] + check.stderr.splitlines()[-2:])
        if inc.ran and check.code != 3:
            yield problem("check-run", f"run --check exited {check.code}, then the run ran "
                                       f"{sorted(inc.ran)}; --check said:\n{said}")
        elif not inc.ran and (inc.restored or inc.removed) and check.code != 3:
            yield problem("check-restore", f"run --check exited {check.code}, then the run restored "
                                           f"{list(inc.restored)} and removed {list(inc.removed)}; "
                                           f"--check said:\n{said}")
        elif not inc.ran and not inc.restored and not inc.removed and check.code != 0:
            yield problem("check-idle", f"run --check exited {check.code}, then the run did nothing; "
                                        f"--check said:\n{said}")


def _without(files: dict, steps: tuple) -> dict:
    return {p: b for p, b in files.items() if not any(s.owns(p) for s in steps)}


def differences(inc: dict, clean: dict) -> list:
    lines = []
    for rel in sorted(set(inc) | set(clean)):
        a, b = inc.get(rel), clean.get(rel)
        if a == b:
            continue
        if b is None:
            lines.append(f"  {rel}: only after the incremental run: {a[:200]!r}")
        elif a is None:
            lines.append(f"  {rel}: only after the clean run: {b[:200]!r}")
        else:
            lines.append(f"  {rel}: incremental {a[:200]!r} != clean {b[:200]!r}")
    return lines


def _events(result: Result) -> str:
    """The run's JSON lines, shortened to what explains each decision."""
    out = []
    for line in result.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            out.append("  " + line)
            continue
        if e.get("type") in ("run_started", "step_started"):
            continue
        reasons = ", ".join(f"{r['kind']} {r['subject']}".strip() for r in e.get("reasons", ()))
        extra = e.get("error") or e.get("reason") or reasons or e.get("counts") or ""
        out.append(f"  {e.get('type')} {e.get('step', '')} {extra}".rstrip())
    return "\n".join(out)


def report(mode: str, seed: int, w: World, history: list, problem: str, inc=None, clean=None) -> str:
    """Everything needed to replay a failing case by hand, or by its seed."""
    parts = [problem,
             f"replay: AMELIA_PROPERTY_SEED={seed} pytest tests/test_incremental_property.py -k {mode}",
             f"mode {mode}, seed {seed}; -p values now: {' '.join(param_args(w.cli_params)) or 'none'}",
             "edits (a run after each):", *[f"  {i + 1}. {h}" for i, h in enumerate(history)],
             "amelia.yaml:", w.pipeline.render()]
    if w.pipeline.params_file:
        parts += [f"{PARAMS_FILE}:", render_params_file(w.pfile, w.comments)]
    if inc is not None:
        parts += [f"incremental run: exit {inc.code}", _events(inc), inc.stderr.strip()]
    if clean is not None:
        parts += [f"clean run: exit {clean.code}", _events(clean), clean.stderr.strip()]
    return "\n".join(p for p in parts if p)

