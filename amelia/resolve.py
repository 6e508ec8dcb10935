"""A validated document → a concrete Pipeline: params, templates, paths, dependencies.

Every semantic problem is collected and reported at once, each at its key.
"""

from __future__ import annotations

import json
import os

from . import graph, paths, templates
from .paths import find_root
from .errors import PipelineError, UsageError, did_you_mean, raise_all
from .loader import Loaded, format_path
from .resolve_agents import AgentResolution, file_location, model_configs
from .providers import ModelConfig
from .spec import COSMETIC_FIELDS, Pipeline, Step, TemplateVar, canonical_json
from .steps import KINDS, kind_of

PATH_REFS = ("params", "name")  # what a path may be built from: known before any step runs


def coerce_param(name: str, ptype: str | None, raw: str):
    """A `-p name=value` string as the param's declared type."""
    if ptype in (None, "string"):
        return raw
    try:
        if ptype == "integer":
            return int(raw)
        if ptype == "number":
            return float(raw)
        if ptype == "boolean":
            low = raw.lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            raise ValueError(raw)
        value = json.loads(raw)
        if ptype == "array" and isinstance(value, list) or ptype == "object" and isinstance(value, dict):
            return value
        raise ValueError(raw)
    except ValueError:
        raise UsageError(
            f"param '{name}' must be {_article(ptype)} {ptype}, got {raw!r}",
            hint="arrays and objects are given as JSON, e.g. -p tags='[\"a\",\"b\"]'"
            if ptype in ("array", "object") else "",
        ) from None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


# Values that stand in for params without one when a file is only checked (validate, graph).
PLACEHOLDERS = {"integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}

_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict}


def _type_ok(ptype: str | None, value) -> bool:
    if ptype is None:
        return True
    if ptype in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[ptype])


class _Resolver:
    def __init__(self, loaded: Loaded, pipeline_file: str, overrides: dict, root: str | None,
                 model_overrides: dict | None = None, placeholders: bool = False):
        self.placeholders = placeholders
        self.doc = loaded.data
        self.loaded = loaded
        self.file = pipeline_file
        self.overrides = overrides
        self.model_overrides = model_overrides or {}
        self.errors: list = []
        self.root = root or self._root()

    def err(self, message: str, path: tuple, hint: str = "", loc=None) -> None:
        self.errors.append(PipelineError(message, loc or self.loaded.source.locate(path), hint))

    def raise_errors(self) -> None:
        """All errors found so far, in file order."""
        self.errors.sort(key=lambda e: (e.location.line, e.location.col) if e.location else (0, 0))
        raise_all(self.errors)

    def _root(self) -> str:
        declared = self.doc.get("root")
        base = os.path.dirname(os.path.abspath(self.file))
        if declared:
            return os.path.normpath(os.path.join(base, declared))
        return find_root(self.file)

    # -- params ---------------------------------------------------------------------
    def params(self) -> dict:
        declared = self.doc.get("params") or {}
        values = {}
        for name, spec in declared.items():
            ptype = spec.get("type")
            if "default" in spec:
                default = spec["default"]
                if not _type_ok(ptype, default):
                    self.err(f"default of param '{name}' is not {_article(ptype)} {ptype}",
                             ("params", name, "default"),
                             "remove the quotes: a quoted value is a string"
                             if isinstance(default, str) and ptype != "string" else "")
                elif spec.get("enum") and default not in spec["enum"]:
                    self.err(f"default of param '{name}' is not one of its enum values",
                             ("params", name, "default"),
                             did_you_mean(str(default), [str(v) for v in spec["enum"]]) or
                             "one of: " + ", ".join(map(str, spec["enum"])))
                values[name] = default
        for name, raw in self.overrides.items():
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"declared params: {', '.join(declared)}" if declared else "this pipeline declares no params")
                raise UsageError(f"unknown param '{name}' given with -p", hint=hint)
            values[name] = coerce_param(name, declared[name].get("type"), raw)
        for name, spec in declared.items():
            if name not in values and self.placeholders:
                # Checking the file needs no values: a stand-in of the right type will do.
                values[name] = PLACEHOLDERS.get(spec.get("type"), f"<{name}>")
                continue
            if name not in values:
                raise UsageError(f"param '{name}' has no default and no value",
                                 hint=f"pass it: amelia run -p {name}=VALUE")
            allowed = spec.get("enum")
            if allowed and name in self.overrides and values[name] not in allowed:
                raise UsageError(f"param '{name}' must be one of {', '.join(map(str, allowed))}, "
                                 f"got {values[name]!r}",
                                 hint=did_you_mean(str(values[name]), [str(v) for v in allowed]))
        return values

    # -- templates ------------------------------------------------------------------
    def refs_in(self, text: str, path: tuple, allowed: tuple, step_ids, outputs_of,
                file: str | None = None) -> list:
        """The good references in a template as (ref, Location); each bad one is an error.

        `file`: the text is that file's (a prompt file), not the value at `path`.
        """
        source = self.loaded.source

        def where(offset, needle):
            if file:
                return file_location(file, text, offset, format_path(path))
            return source.locate_within(path, text, offset, needle)

        found, syntax = templates.scan(text)
        for e in syntax:
            self.err(str(e), path, e.hint, where(e.offset, e.source))
        good = []
        for ref, offset, written in found:
            loc = where(offset, written)

            def bad(message, hint=""):
                self.err(message, path, hint, loc)

            parts = ref.split(".")
            root = parts[0]
            if root not in allowed:
                if root in templates.ROOTS:
                    bad(f"'{ref}' cannot be used here",
                        f"here you may use: {', '.join(r + '.' if r != 'name' else r for r in allowed)}")
                else:
                    bad(f"unknown reference '{ref}'",
                        did_you_mean(root, templates.ROOTS) or "references start with params., steps., env. or name")
                continue
            if root == "params":
                if len(parts) != 2 or parts[1] not in self.param_values:
                    declared = list(self.param_values)
                    if len(parts) == 1:
                        bad("'params' names no param", "use params.NAME")
                    elif len(parts) > 2 and parts[1] in self.param_values:
                        bad(f"'{ref}' reads a field of a param", f"use params.{parts[1]}")
                    else:
                        bad(f"undefined param '{parts[1]}' in '{ref}'",
                            did_you_mean(parts[1], declared) or "declare it under `params:`")
                    continue
            elif root == "env":
                if len(parts) != 2 or parts[1] not in self.env_names:
                    name = ".".join(parts[1:])
                    bad(f"env var '{name}' is not declared" if name else "'env' names no variable",
                        "list it under `env:` at the top of the file to let templates read it"
                        if name else "use env.NAME")
                    continue
            elif root == "steps":
                if len(parts) < 3:
                    bad(f"'{ref}' names no field", "use steps.ID.output or steps.ID.json.FIELD")
                    continue
                sid, field = parts[1], parts[2]
                if sid not in step_ids:
                    bad(f"unknown step '{sid}' in '{ref}'",
                        did_you_mean(sid, step_ids) or f"steps are: {', '.join(step_ids)}")
                    continue
                if field not in ("output", "json") or (field == "output" and len(parts) > 3) or (
                        field == "json" and len(parts) < 4):
                    bad(f"'{ref}' is not a step field",
                        did_you_mean(field, ("output", "json")) or "use steps.ID.output or steps.ID.json.FIELD")
                    continue
                if sid in outputs_of and (len(outputs_of[sid]) != 1 or outputs_of[sid][0].endswith("/")):
                    n = len(outputs_of[sid])
                    bad(f"step '{sid}' has no single output file for '{ref}'",
                        f"give step '{sid}' an `output:` file" if n == 0 else
                        f"step '{sid}' writes {n} outputs; a reference needs one `output:` file"
                        if n > 1 else f"step '{sid}' writes a directory; a reference needs one `output:` file")
                    continue
            elif root == "name" and len(parts) != 1:
                bad(f"unknown reference '{ref}'", "use ${{ name }}")
                continue
            good.append((ref, loc))
        return good

    def render_path(self, text: str, path: tuple):
        if "${{" not in text:
            return text
        before = len(self.errors)
        self.refs_in(text, path, PATH_REFS, (), {})
        if len(self.errors) > before:
            return None
        return templates.substitute(text, self._static_value)

    def _static_value(self, ref: str) -> str:
        parts = ref.split(".")
        if parts[0] == "name":
            return str(self.doc.get("name", ""))
        value = self.param_values[parts[1]]
        return value if isinstance(value, str) else json.dumps(value)

    # -- steps ----------------------------------------------------------------------
    def resolve(self, digest: str, sources: tuple) -> Pipeline:
        self.param_values = self.params()
        self.env_names = tuple(self.doc.get("env") or ())
        self.models = model_configs(self.doc, self.model_overrides, self.err)
        raw_steps: dict = self.doc.get("steps") or {}
        step_ids = list(raw_steps)
        agent_of: dict = {}  # step → resolved agent settings
        extra_sources: dict = {}  # prompt/schema file → sha256

        shaped = {}
        for sid, data in raw_steps.items():
            got = self._shape(sid, data)
            if got:
                shaped[sid] = got
        # Steps whose outputs all resolved; a path error was reported already.
        outputs_of = {sid: s["outputs"] for sid, s in shaped.items() if not s["path_errors"]}
        self._check_output_clashes(shaped)

        edges: dict[str, set] = {}
        data_edges: dict[str, set] = {}
        vars_of: dict[str, list] = {}
        why: dict[tuple, tuple] = {}  # (step, dep) -> (how, Location): the first link found
        for sid, s in shaped.items():
            data = raw_steps[sid]
            kind = KINDS[s["kind"]]
            needs = set()
            for i, dep in enumerate(s["needs"]):
                p = ("steps", sid, "needs", i) if isinstance(data.get("needs"), list) else ("steps", sid, "needs")
                if dep == sid:
                    self.err(f"step '{sid}' needs itself", p, "remove it from `needs`")
                elif dep not in raw_steps:
                    self.err(f"step '{sid}' needs unknown step '{dep}'", p,
                             did_you_mean(dep, step_ids) or f"steps are: {', '.join(step_ids)}")
                else:
                    needs.add(dep)
                    why.setdefault((sid, dep), (f"{sid} needs {dep}", self.loaded.source.locate(p)))
            refs = []
            if s["kind"] == "agent":
                agent = AgentResolution(self, sid, data)
                agent_of[sid] = agent.resolve()
                extra_sources.update(agent.sources)
                texts = agent.texts
            else:
                texts = [(data[f], ("steps", sid, f), None) for f in kind.template_fields
                         if isinstance(data.get(f), str)]
            for text, tpath, tfile in texts:
                refs += self.refs_in(text, tpath, kind.allowed_refs, step_ids, outputs_of, tfile)
            data_needs = set()
            for ref, loc in refs:
                if ref.startswith("steps.") and ref.split(".")[1] != sid:
                    dep = ref.split(".")[1]
                    data_needs.add(dep)
                    why.setdefault((sid, dep), (f"{sid} uses ${{{{ {ref} }}}}", loc))
            for other, other_s in shaped.items():
                outs = other_s["outputs"]
                if other == sid:
                    continue
                for i, inp in enumerate(s["inputs"]):
                    hit = next((o for o in outs if paths.overlaps(inp, o)), None)
                    if hit is not None:
                        data_needs.add(other)
                        how = f"{sid} reads {hit}" if inp == hit else f"{sid} reads {inp}, which matches {hit}"
                        why.setdefault((sid, other), (f"{how}, written by {other}",
                                                      self.loaded.source.locate(s["input_paths"][i])))
                        break
            edges[sid] = needs | data_needs
            data_edges[sid] = data_needs
            vars_of[sid] = list(dict.fromkeys(ref for ref, _ in refs))

        order = [sid for sid in raw_steps if sid in shaped]
        g = graph.build(order, edges)
        position = {sid: i for i, sid in enumerate(order)}
        for cycle in graph.find_cycles(g):
            # The graph's edges run from a dependency to its dependent; say it the way
            # the file does ("a needs b"), starting at the step that comes first.
            ring = list(reversed(cycle[:-1]))
            start = min(range(len(ring)), key=lambda i: position[ring[i]])
            ring = ring[start:] + ring[:start]
            links = [why[(ring[i], ring[(i + 1) % len(ring)])] for i in range(len(ring))]
            self.err(f"dependency cycle: {' -> '.join(ring + ring[:1])}", ("steps", ring[0]),
                     "; ".join(how for how, _ in links) +
                     ". A step cannot depend on itself through others: remove one of these links",
                     links[0][1])
        self.raise_errors()
        topo = graph.topological_order(g, order)

        steps = []
        for sid in topo:
            s = shaped[sid]
            data = raw_steps[sid]
            tvars = tuple(TemplateVar(ref, templates.env_name(ref)) for ref in vars_of[sid])
            static = {v.env: self._static_value(v.ref) for v in tvars if v.ref.split(".")[0] in PATH_REFS}
            command = ""
            if s["kind"] == "run":
                command = templates.substitute(data["run"], lambda r: "${" + templates.env_name(r) + "}")
            definition = {k: v for k, v in data.items() if k not in COSMETIC_FIELDS}
            definition["inputs"] = list(s["inputs"])
            definition.pop("output", None)
            definition["outputs"] = list(s["outputs"])
            definition["static_vars"] = static  # param values the step reads
            config = {"static_vars": static}
            if s["kind"] == "agent":
                agent = agent_of[sid]
                config.update(agent)
                # The persona, the model's settings and the prompt/schema texts change
                # the answer, wherever in the file (or in which file) they are written.
                definition["agent"] = {k: v for k, v in agent.items() if k != "model"}
                definition["agent"]["model"] = ModelConfig(**agent["model"]).key_material()
                definition.pop("model", None)
                definition.pop("schema", None)
            steps.append(Step(
                id=sid,
                kind=s["kind"],
                definition=canonical_json(definition),
                inputs=tuple(s["inputs"]),
                outputs=tuple(s["outputs"]),
                needs=tuple(sorted(edges[sid])),
                data_needs=tuple(sorted(data_edges[sid])),
                vars=tvars,
                command=command,
                timeout=data.get("timeout"),
                description=data.get("description", ""),
                config=config,
            ))
        return Pipeline(
            name=str(self.doc.get("name") or os.path.splitext(os.path.basename(self.file))[0]),
            file=self.file,
            root=self.root,
            digest=digest,
            params=self.param_values,
            env_names=self.env_names,
            steps=tuple(steps),
            sources=tuple(sources) + tuple(sorted(extra_sources.items())),
        )

    def _shape(self, sid: str, data: dict):
        """Kind, needs, inputs and outputs of one step, checked; None if unusable."""
        base = ("steps", sid)
        kinds = kind_of(data)
        if not kinds:
            self.err(f"step '{sid}' does nothing", base,
                     "give it `run:` (a command) or `agent:` with `prompt:` (an LLM call)")
            return None
        if len(kinds) > 1:
            self.err(f"step '{sid}' does more than one thing: {' and '.join(kinds)}", base + (kinds[1],),
                     "a step does exactly one thing; split it into two steps")
            return None
        kind = kinds[0]
        if not KINDS[kind].available:
            self.err(f"'{kind}' steps are not available in this version of amelia", base + (kind,),
                     "use a `run:` step for now")
            return None
        if "output" in data and "outputs" in data:
            self.err(f"step '{sid}' has both `output` and `outputs`", base + ("outputs",),
                     "use `output` for one file or `outputs` for several")
        needs = data.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        raw_inputs = data.get("inputs") or []
        raw_inputs = [raw_inputs] if isinstance(raw_inputs, str) else list(raw_inputs)
        raw_outputs = [data["output"]] if "output" in data else list(data.get("outputs") or [])
        inputs, outputs, input_paths, output_paths = [], [], [], []
        for field, raw, into, where in (("inputs", raw_inputs, inputs, input_paths),
                                        ("outputs", raw_outputs, outputs, output_paths)):
            single = field == "outputs" and "output" in data
            for i, text in enumerate(raw):
                p = base + (("output",) if single else (field, i) if isinstance(data.get(field), list) else (field,))
                rendered = self.render_path(text, p)
                if rendered is None:
                    continue
                problem = paths.confinement_problem(rendered, self.root)
                if problem:
                    self.err(f"path '{rendered}' {problem}", p,
                             "paths are relative to the project root and stay inside it")
                    continue
                norm = paths.normalize(rendered)
                if not norm:
                    self.err("path names the project root itself", p, "name a file or a directory below it")
                    continue
                if field == "outputs" and paths.is_glob(norm):
                    self.err(f"output '{norm}' is a glob", p, "outputs name files or directories (ending in /)")
                    continue
                if field == "outputs" and (norm.split("/")[0] in paths.SKIP_DIRS):
                    self.err(f"output '{norm}' is inside {norm.split('/')[0]}/", p,
                             "amelia's store and git's own files are not outputs")
                    continue
                into.append(norm)
                where.append(p)
        return {"kind": kind, "needs": needs, "inputs": inputs, "outputs": outputs,
                "path_errors": len(outputs) != len(raw_outputs),
                "input_paths": input_paths, "output_paths": output_paths}

    def _check_output_clashes(self, shaped: dict) -> None:
        """Each file is written by one step: no equal outputs, none inside another's directory."""
        owner: dict[str, tuple] = {}  # output -> (step, key path)
        for sid, s in shaped.items():
            for o, p in zip(s["outputs"], s["output_paths"]):
                for other_out, (other, other_p) in owner.items():
                    mine = o.rstrip("/")
                    theirs = other_out.rstrip("/")
                    who = "the same step" if other == sid else f"step '{other}'"
                    line = self.loaded.source.locate(other_p).line
                    if mine == theirs:
                        self.err(f"output '{o}' is also written by {who}", p,
                                 f"each file is written by one step only (see line {line})")
                    elif other_out.endswith("/") and o.startswith(other_out):
                        self.err(f"output '{o}' is inside '{other_out}', an output directory of {who}", p,
                                 f"a directory output owns everything below it (see line {line})")
                    elif o.endswith("/") and other_out.startswith(o):
                        self.err(f"output directory '{o}' contains '{other_out}', an output of {who}", p,
                                 f"a directory output owns everything below it (see line {line})")
                    else:
                        continue
                    break
                owner.setdefault(o, (sid, p))


def resolve(loaded: Loaded, pipeline_file: str, overrides: dict, digest: str, sources: tuple,
            root: str | None = None, model_overrides: dict | None = None,
            placeholders: bool = False) -> Pipeline:
    """placeholders: params without a value get a stand-in (for checking, never running)."""
    return _Resolver(loaded, pipeline_file, overrides, root, model_overrides,
                     placeholders).resolve(digest, sources)
