"""The resolved pipeline as frozen data: no I/O, no behaviour.

A Pipeline is what `resolve` makes of a file and what the planner, compiler and
runner read. It round-trips through plain JSON (`to_json`/`from_json`) so that an
unchanged file is neither parsed nor validated again (DESIGN §3, fast no-op).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# What a cache key covers is defined in keys.py; these names stay importable from here.
from .keys import CACHE_FORMAT_VERSION, COSMETIC_FIELDS, canonical_json  # noqa: F401

# Bump when Pipeline's shape, or what resolving accepts, changes: cached resolved
# pipelines are then ignored. (3: keys of unavailable features are errors now, so a
# pipeline resolved by an earlier version that ignored them must not be reused.
# 4: Step.config is the kind's typed config; static_vars is a Step field.
# 5: validate refuses more (issue 10): an output holding its step's own input, outputs that
# clash through a symlink, bad glob ranges, .nan/.inf, a step reading its own output, a
# command too long to exec; a file resolved before must be checked again.
# 6: Step.always; RunConfig.shell and depfile. 7: Pipeline.groups. 8: Step.exclude; RAG
# sources, retrieve steps and context are resolved. 9: a source's paths are rendered in its
# SourceConfig, as in its step's inputs. 10: git targets: Step.target, Pipeline.targets.
# 11: recipes: TemplateVar.step and .field.)
SPEC_FORMAT_VERSION = 11


@dataclass(frozen=True)
class TemplateVar:
    """One `${{ ref }}` a step uses, and the environment variable that carries it."""

    ref: str  # as written, e.g. params.goal, steps.design.output (in a recipe: its own names)
    env: str  # e.g. AMELIA_PARAM_GOAL
    # A steps.… reference: the step's id in the pipeline (namespaced: review.critique) and
    # the field after it (("output",) or ("json", "a", "b")); "" and () for other references.
    step: str = ""
    field: tuple = ()


class _Encoded:
    """A step's config as the resolved-pipeline cache holds it: plain JSON, not yet read."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class _KindConfig:
    """`Step.config`: the kind's typed config. One read back from the resolve cache stays
    JSON until it is first read: a no-op run never reads a config, so it imports no step
    kind (DESIGN §3, fast no-op). Reading it decodes it once, through the kind's CONFIG."""

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, step, owner=None):
        if step is None:
            return None  # the field's default
        value = step.__dict__[self.slot]
        if type(value) is _Encoded:
            from .steps import config_from_json

            value = config_from_json(step.kind, value.data)
            step.__dict__[self.slot] = value  # the same value every time: a race only repeats work
        return value

    def __set__(self, step, value):
        step.__dict__[self.slot] = value


@dataclass(frozen=True)
class TargetConfig:
    """One entry of `targets:`, checked: a branch its steps' outputs are committed to."""

    name: str  # the key under `targets:`; the worktree's folder, .amelia/worktrees/NAME
    branch: str  # rendered and checked (git/refs.ref_problem)
    base: str = "HEAD"  # where the branch starts when it does not exist yet
    commit: str = ""  # the message template; "" for the default. ${{ run.id }} and
    # ${{ run.steps }} are filled in at commit time (params and name at resolve time)
    author: str = ""  # "Name <email>", or "" for git's configured identity
    push: str = ""  # a remote's name: pushed to after a commit, with `amelia run --push`
    subdir: str = ""  # the project root's place in the repository ("" at its top), e.g. "app/"
    description: str = ""


@dataclass(frozen=True)
class Step:
    id: str
    kind: str  # a key of the step registry: run, agent, retrieve, git
    definition: str  # keys.definition: canonical JSON of its fields minus COSMETIC_FIELDS
    inputs: tuple = ()  # path patterns, relative to the root, params already rendered
    outputs: tuple = ()  # paths; a directory output ends with "/"
    needs: tuple = ()  # every step that must finish first, sorted
    data_needs: tuple = ()  # the subset whose outputs feed this step (its cache key)
    vars: tuple = ()  # TemplateVar, in order of first use
    static_vars: dict = field(default_factory=dict)  # env name → value of each param (or name) it reads
    timeout: float | None = None
    description: str = ""
    always: bool = False  # runs on every run (Make's .PHONY); not part of its key
    depfile: str = ""  # a Make-format file the step writes; the files it names become inputs
    exclude: tuple = ()  # patterns of files its input globs leave out (a RAG source's `exclude:`)
    # The git target it runs in ("" for none): its paths are under the target's worktree
    # (targets.path_prefix), and the worktree is its working directory.
    target: str = ""
    # What its kind resolved: the frozen dataclass the kind declares (steps.<kind>.CONFIG,
    # e.g. RunConfig, AgentConfig); None for a kind without settings.
    config: object = _KindConfig()


@dataclass(frozen=True)
class Pipeline:
    name: str
    file: str  # as the user named it, for messages
    root: str  # absolute project root
    digest: str  # hash of the file bytes, its includes and the param overrides
    params: dict  # resolved values
    env_names: tuple
    steps: tuple  # Step, in a topological order (file order where free)
    sources: tuple = ()  # (path, sha256) of the files this was resolved from
    groups: tuple = ()  # the foreach steps' names (`--force compile`), with or without instances
    targets: tuple = ()  # TargetConfig of every declared target, sorted by name

    def target(self, name: str) -> "TargetConfig":
        return next(t for t in self.targets if t.name == name)

    def step(self, step_id: str) -> Step:
        return self.by_id()[step_id]

    def by_id(self) -> dict:
        cache = self.__dict__.get("_by_id")
        if cache is None:
            cache = {s.id: s for s in self.steps}
            object.__setattr__(self, "_by_id", cache)
        return cache

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "Pipeline":
        """The pipeline `to_json` wrote. Each step's config is read back by its kind's
        CONFIG when it is first used (`_KindConfig`)."""
        d = json.loads(text)
        steps = []
        for s in d.pop("steps"):
            s["vars"] = tuple(TemplateVar(**{**v, "field": tuple(v.get("field") or ())}) for v in s["vars"])
            for k in ("inputs", "outputs", "needs", "data_needs", "exclude"):
                s[k] = tuple(s[k])
            s["config"] = _Encoded(s["config"])
            steps.append(Step(**s))
        d["env_names"] = tuple(d["env_names"])
        d["sources"] = tuple(tuple(x) for x in d["sources"])
        d["groups"] = tuple(d.get("groups") or ())
        d["targets"] = tuple(TargetConfig(**t) for t in d.get("targets") or ())
        return Pipeline(steps=tuple(steps), **d)

