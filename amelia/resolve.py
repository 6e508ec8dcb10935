"""A validated document → a concrete Pipeline: params, templates, paths, dependencies.

Every semantic problem is collected and reported at once, each at its key.
"""

from __future__ import annotations

import json
import os

from . import graph, paths, templates
from .paths import find_root
from .errors import PipelineError, UsageError, did_you_mean, raise_all
from .loader import Loaded
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


_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict}


def _type_ok(ptype: str | None, value) -> bool:
    if ptype is None:
        return True
    if ptype in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[ptype])


class _Resolver:
    def __init__(self, loaded: Loaded, pipeline_file: str, overrides: dict, root: str | None):
        self.doc = loaded.data
        self.loaded = loaded
        self.file = pipeline_file
        self.overrides = overrides
        self.errors: list = []
        self.root = root or self._root()

    def err(self, message: str, path: tuple, hint: str = "") -> None:
        self.errors.append(PipelineError(message, self.loaded.source.locate(path), hint))

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
                if not _type_ok(ptype, spec["default"]):
                    self.err(f"default of param '{name}' is not {_article(ptype)} {ptype}",
                             ("params", name, "default"))
                values[name] = spec["default"]
        for name, raw in self.overrides.items():
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"declared params: {', '.join(declared)}" if declared else "this pipeline declares no params")
                raise UsageError(f"unknown param '{name}' given with -p", hint=hint)
            values[name] = coerce_param(name, declared[name].get("type"), raw)
        for name, spec in declared.items():
            if name not in values:
                raise UsageError(f"param '{name}' has no default and no value",
                                 hint=f"pass it: amelia run -p {name}=VALUE")
            allowed = spec.get("enum")
            if allowed and values[name] not in allowed:
                raise UsageError(f"param '{name}' must be one of {', '.join(map(str, allowed))}, "
                                 f"got {values[name]!r}")
        return values

    # -- templates ------------------------------------------------------------------
    def refs_in(self, text: str, path: tuple, allowed: tuple, step_ids, outputs_of) -> list[str]:
        try:
            found = templates.references(text)
        except templates.TemplateSyntaxError as e:
            self.err(str(e), path, e.hint)
            return []
        good = []
        for ref, _ in found:
            parts = ref.split(".")
            root = parts[0]
            if root not in allowed:
                if root in templates.ROOTS:
                    self.err(f"'{ref}' cannot be used here", path,
                             f"here you may use: {', '.join(r + '.' if r != 'name' else r for r in allowed)}")
                else:
                    self.err(f"unknown reference '{ref}'", path,
                             did_you_mean(root, templates.ROOTS) or "references start with params., steps., env. or name")
                continue
            if root == "params":
                if len(parts) != 2 or parts[1] not in self.param_values:
                    name = parts[1] if len(parts) > 1 else ""
                    declared = list(self.param_values)
                    self.err(f"undefined param '{name}' in '{ref}'", path,
                             did_you_mean(name, declared) or "declare it under `params:`")
                    continue
            elif root == "env":
                if len(parts) != 2 or parts[1] not in self.env_names:
                    self.err(f"env var '{'.'.join(parts[1:])}' is not declared", path,
                             "list it under `env:` at the top of the file to let templates read it")
                    continue
            elif root == "steps":
                if len(parts) < 3:
                    self.err(f"'{ref}' names no field", path, "use steps.ID.output or steps.ID.json.FIELD")
                    continue
                sid, field = parts[1], parts[2]
                if sid not in step_ids:
                    self.err(f"unknown step '{sid}' in '{ref}'", path, did_you_mean(sid, step_ids))
                    continue
                if field not in ("output", "json") or (field == "output" and len(parts) > 3) or (
                        field == "json" and len(parts) < 4):
                    self.err(f"'{ref}' is not a step field", path, "use steps.ID.output or steps.ID.json.FIELD")
                    continue
                if len(outputs_of.get(sid, ())) != 1 or outputs_of[sid][0].endswith("/"):
                    self.err(f"step '{sid}' has no single output file for '{ref}'", path,
                             f"give step '{sid}' an `output:` file")
                    continue
            elif root == "name" and len(parts) != 1:
                self.err(f"unknown reference '{ref}'", path, "use ${{ name }}")
                continue
            good.append(ref)
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
        raw_steps: dict = self.doc.get("steps") or {}
        step_ids = list(raw_steps)

        shaped = {}
        for sid, data in raw_steps.items():
            got = self._shape(sid, data)
            if got:
                shaped[sid] = got
        outputs_of = {sid: s["outputs"] for sid, s in shaped.items()}
        self._check_output_clashes(shaped)

        edges: dict[str, set] = {}
        data_edges: dict[str, set] = {}
        vars_of: dict[str, list] = {}
        for sid, s in shaped.items():
            data = raw_steps[sid]
            kind = KINDS[s["kind"]]
            needs = set()
            for i, dep in enumerate(s["needs"]):
                p = ("steps", sid, "needs", i) if isinstance(data.get("needs"), list) else ("steps", sid, "needs")
                if dep == sid:
                    self.err(f"step '{sid}' needs itself", p)
                elif dep not in raw_steps:
                    self.err(f"step '{sid}' needs unknown step '{dep}'", p,
                             did_you_mean(dep, step_ids) or f"steps are: {', '.join(step_ids)}")
                else:
                    needs.add(dep)
            refs = []
            for fld in kind.template_fields:
                if isinstance(data.get(fld), str):
                    refs += self.refs_in(data[fld], ("steps", sid, fld), kind.allowed_refs, step_ids, outputs_of)
            data_needs = {r.split(".")[1] for r in refs if r.startswith("steps.")}
            data_needs.discard(sid)
            for other, outs in outputs_of.items():
                if other == sid:
                    continue
                if any(paths.overlaps(i, o) for i in s["inputs"] for o in outs):
                    data_needs.add(other)
            edges[sid] = needs | data_needs
            data_edges[sid] = data_needs
            vars_of[sid] = list(dict.fromkeys(refs))

        order = [sid for sid in raw_steps if sid in shaped]
        g = graph.build(order, edges)
        cycle = graph.find_cycle(g)
        if cycle:
            self.err(f"dependency cycle: {' -> '.join(cycle)}", ("steps", cycle[1]),
                     "a step cannot depend on itself through others; remove one of these links")
        raise_all(self.errors)
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
                config={"static_vars": static},
            ))
        return Pipeline(
            name=str(self.doc.get("name") or os.path.splitext(os.path.basename(self.file))[0]),
            file=self.file,
            root=self.root,
            digest=digest,
            params=self.param_values,
            env_names=self.env_names,
            steps=tuple(steps),
            sources=sources,
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
        inputs, outputs = [], []
        for field, raw, into in (("inputs", raw_inputs, inputs), ("outputs", raw_outputs, outputs)):
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
        return {"kind": kind, "needs": needs, "inputs": inputs, "outputs": outputs}

    def _check_output_clashes(self, shaped: dict) -> None:
        owner: dict[str, str] = {}
        for sid, s in shaped.items():
            for o in s["outputs"]:
                for other_path, other in owner.items():
                    same = o.rstrip("/") == other_path.rstrip("/")
                    nested = (other_path.endswith("/") and o.startswith(other_path)) or (
                        o.endswith("/") and other_path.startswith(o))
                    if same or nested:
                        p = ("steps", sid, "output") if "output" in self.doc["steps"][sid] else ("steps", sid, "outputs")
                        what = "also written by" if same else "overlaps the output of"
                        self.err(f"output '{o}' is {what} step '{other}'", p,
                                 "each file is written by one step only")
                        break
                owner.setdefault(o, sid)


def resolve(loaded: Loaded, pipeline_file: str, overrides: dict, digest: str, sources: tuple,
            root: str | None = None) -> Pipeline:
    return _Resolver(loaded, pipeline_file, overrides, root).resolve(digest, sources)
