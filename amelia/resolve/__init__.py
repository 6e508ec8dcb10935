"""Validated documents → a concrete Pipeline: params, templates, paths, dependencies.

The parts, each in its own module:
- document: Document (a file's data, source map and scope), the document graph, Problems
- params: a document's params → values (and `-p` coercion)
- references: `${{ }}` references checked against a document's scope; paths rendered
- models: a document's `models:` → ModelConfig by name
- shape: a step's kind, needs, inputs and outputs; one writer per file
- kinds: what a step kind's `resolve` hook is given (KindContext); files: files it reads
- dependencies: needs, references and overlap → edges; cycles; the order
- ../steps: each kind resolves its own part of a step into its typed config (a hook)
- ../keys: a step's normalised definition (what its cache key covers)
- ../features: keys of the format this version does not implement fail here

Every semantic problem is collected and reported at once, each at its key.
"""

from __future__ import annotations

import dataclasses
import os

from .. import features, keys, steps, templates
from .. import targets as targets_mod
from ..loader import Loaded
from ..spec import Pipeline, Step, TemplateVar
from ..steps import KINDS
from .dependencies import OutputIndex, data_needs, declared_needs, order
from .foreach import expand, fixed_outputs
from .document import Document, DocumentGraph, Problems, project_root
from .kinds import KindContext
from .models import model_configs
from .params import PLACEHOLDERS, coerce_param, param_values  # noqa: F401  (public)
from .params_files import read_params_files
from .references import PATH_REFS, References
from .references import step_of as references_step_of
from . import sources as rag_sources
from .shape import check_command, check_output_clashes, retarget, shape
from .recipes import Includes, RecipeOptions
from .targets import check_step_target, in_git_repo, target_configs

__all__ = ["resolve", "coerce_param", "PLACEHOLDERS", "Document", "DocumentGraph", "RecipeOptions"]


def resolve(loaded: Loaded, pipeline_file: str, overrides: dict, digest: str, sources: tuple,
            root: str | None = None, model_overrides: dict | None = None,
            placeholders: bool = False, recipes: RecipeOptions | None = None) -> Pipeline:
    """The pipeline of a loaded, schema-valid file and the recipes it includes.

    overrides: param name → `-p` text; model_overrides: model name → the model it
    stands for (`--model`); placeholders: params without a value get a stand-in (for
    checking, never running); recipes: how remote recipes are pinned (`--frozen`,
    `amelia lock --update`). Raises every error found, located, at once.
    """
    problems = Problems(pipeline_file)
    root = project_root(loaded.data, pipeline_file, root)
    model_overrides = model_overrides or {}
    top = open_document(loaded, pipeline_file, "", overrides, model_overrides, placeholders, problems,
                        root)

    def open_recipe(loaded_, file, namespace, binding):
        return open_document(loaded_, file, namespace, {}, model_overrides, placeholders, problems, root,
                             binding)

    includes = Includes(root, problems, lambda doc: References(doc, problems.reporter(doc)), open_recipe,
                        recipes or RecipeOptions())
    docs, edges = includes.documents(top)
    sources = tuple(sources) + tuple(sorted(includes.sources.items()))
    return _Resolution(DocumentGraph(docs, edges), root, problems).pipeline(digest, sources)


def open_document(loaded: Loaded, file: str, namespace: str, overrides: dict, model_overrides: dict,
                  placeholders: bool, problems: Problems, root: str = ".", given=None) -> Document:
    """A loaded file as a Document: its params (its params files' too), env and models
    resolved in its own scope. given: an included recipe's binding (include.Binding)."""
    files_root = given.files_root if given else ""
    included_from = given.included_from if given else ""
    err = problems.reporter(loaded.source, included_from)
    declared = loaded.data.get("params") or {}
    from_files, file_sources, complete = read_params_files(loaded.data, files_root or root, declared, err)
    if not complete:  # -p for a key of a file that could not be read: its error is the one to show
        overrides = {n: v for n, v in overrides.items() if n.split(".")[0] in declared}
    values = given.values if given else {}
    params = param_values(loaded.data, overrides, placeholders, err, from_files, values)
    stand_ins = frozenset(n for n, spec in declared.items()
                          if (placeholders and "default" not in spec and n not in overrides and n not in values)
                          or (given and n in given.stand_ins))
    for key, path in features.find(loaded.data):
        err(key.message(), path, key.hint)
    env_names = tuple(loaded.data.get("env") or ())
    if given:  # `--model NAME=…` reaches a recipe only where it has both models
        names = set(loaded.data.get("models") or ()) | {"default"}
        model_overrides = {n: t for n, t in model_overrides.items() if n in names and t in names}
    models = model_configs(loaded.data, model_overrides, err)
    return Document(file, loaded, namespace, params, env_names, models,
                    frozenset(from_files), stand_ins, file_sources, not complete,
                    overridden=frozenset(overrides), files_root=files_root, included_from=included_from)


class _Resolution:
    """The steps of every document of one pipeline, linked and ordered."""

    def __init__(self, documents: DocumentGraph, root: str, problems: Problems):
        self.documents = documents
        self.root = root
        self.problems = problems
        self.refs = {doc.namespace: References(doc, problems.reporter(doc)) for doc in documents.documents}

    def pipeline(self, digest: str, sources: tuple) -> Pipeline:
        docs = self.documents.documents
        shaped = {}
        memo: dict = {}  # directory → its real path: one walk per directory, not per path
        groups: dict = {}  # foreach step id → its instance ids, in item order
        extra_sources: dict = {}  # files the kinds read (prompt, schema), params files, glob listings → sha256
        targets: dict = {}  # name → TargetConfig
        for doc in docs:
            extra_sources.update(self._sources_of(doc, doc.sources))
            refs, err = self.refs[doc.namespace], self.problems.reporter(doc)
            refs.groups = groups
            declared = doc.data.get("targets") or {}
            doc_targets = target_configs(doc, refs, self.root, err)
            if doc.namespace:  # a recipe's targets are namespaced as its steps are
                doc_targets = {n: dataclasses.replace(t, name=doc.step_id(n)) for n, t in doc_targets.items()}
            for local_name, t in doc_targets.items():
                other = next((o for o in targets.values() if o.branch == t.branch), None)
                if other is not None:  # in another document: one branch, one worktree
                    err(f"target '{local_name}' commits to branch '{t.branch}', as target '{other.name}' does",
                        ("targets", local_name, "branch"),
                        "a branch has one worktree: give each target its own branch (a recipe's "
                        "branch can come from a param, e.g. branch: ${{ params.branch }})")
                targets[t.name] = t
            in_repo = None  # looked up once, when a step names a target
            for local, data in doc.steps().items():
                items, listings = expand(data, ("steps", local), self.root, refs, err)
                extra_sources.update(listings)
                if items is not None:
                    groups[doc.step_id(local)] = []
                    if not fixed_outputs(data, ("steps", local), len(items), err):
                        items = items[:1]  # said once, not once per pair of instances
                for item in (None,) if items is None else items:
                    s = shape(doc, local, self.root, refs, err, memo, item)
                    if s is not None and s.data.get("target"):
                        if in_repo is None:
                            in_repo = in_git_repo(self.root)
                        name = check_step_target(s, doc_targets, declared, in_repo, err)
                        if name:
                            t = doc_targets[name]
                            retarget(s, t.name, targets_mod.path_prefix(t.name, t.subdir))
                    if s is not None:
                        shaped[s.id] = s
                        if item is not None:
                            groups[doc.step_id(local)].append(s.id)
            for name in doc.data.get("sources") or {}:
                rag_sources.check_source(doc, name, err)
            rag_sources.check_agents(doc, err)
            for s in rag_sources.source_steps(doc, self.root, refs, err, memo):
                shaped[s.id] = s
        for s in rag_sources.reading_steps(shaped, docs, self.problems.reporter):
            shaped[s.id] = s
        # The steps as written, in file order, for messages.
        names = dict.fromkeys(doc.step_id(local) for doc in docs for local in doc.steps())
        # Every step and instance; a dict so that "is this a step" is one look-up.
        step_ids = dict.fromkeys(list(names) + list(shaped))
        # Steps whose outputs all resolved; a path error was reported already.
        outputs_of = {sid: s.outputs for sid, s in shaped.items() if not s.path_errors}
        check_output_clashes(shaped, self.problems)
        writers = OutputIndex(shaped)

        edges, data_edges, vars_of, config_of, listed = {}, {}, {}, {}, {}
        why: dict = {}  # (step, dep) -> (how, Location or a function giving it): the first link found
        for sid, s in shaped.items():
            err = self.problems.reporter(s.doc)
            needs = declared_needs(s, step_ids, err, why, groups, names)
            kind = KINDS[s.kind]
            resolved = steps.resolve(s.kind, KindContext(s.doc, s.doc.files_root or self.root, s.base, err,
                                                         self.refs[s.doc.namespace].bound(s.item).render_path),
                                     s.local, s.data)
            config_of[sid] = resolved.config
            check_command(s, resolved.config, err)
            extra_sources.update(self._sources_of(s.doc, resolved.sources))
            refs = []
            doc_refs = self.refs[s.doc.namespace].bound(s.item)
            allowed = kind.allowed_refs
            if kind.retrieves == "context" and rag_sources.context_items(s.doc, s.data, s.base):
                allowed = allowed + ("context",)
            for text, tpath, tfile in resolved.texts:
                if tfile and s.doc.files_root:  # a recipe's prompt file: named from where you are
                    tfile = os.path.relpath(os.path.join(s.doc.files_root, tfile))
                refs += doc_refs.check(text, tpath, allowed, names, outputs_of, tfile, self_id=sid)
            listed[sid] = self._listed_params(s, err, {ref for ref, _ in refs})
            found = self._step_of(s.doc, step_ids)
            uses = data_needs(s, refs, writers, why, lambda ref: found(ref)[0])
            edges[sid] = needs | uses
            data_edges[sid] = uses
            vars_of[sid] = list(dict.fromkeys(ref for ref, _ in refs))

        self.step_ids = step_ids
        built = tuple(self._step(shaped[sid], edges[sid], data_edges[sid], vars_of[sid], config_of[sid],
                                 listed[sid])
                      for sid in order(shaped, edges, why, self.problems))
        top = self.documents.root
        return Pipeline(
            name=str(top.data.get("name") or os.path.splitext(os.path.basename(top.file))[0]),
            file=top.file,
            root=self.root,
            digest=digest,
            params=top.params,
            env_names=top.env_names,
            steps=built,
            groups=tuple(groups),
            targets=tuple(targets[n] for n in sorted(targets)),
            sources=tuple(sources) + tuple(sorted(extra_sources.items())),
        )

    @staticmethod
    def _step_of(doc, step_ids):
        """ref → the id of the step a `steps.…` reference written in doc names."""
        def step_of(ref: str):
            return references_step_of(ref.split("."), doc.namespace, step_ids)
        return step_of

    def _sources_of(self, doc, sources) -> dict:
        """(path, sha256) of files a document read, relative to the project root (or
        absolute outside it): a recipe reads its files from its own folder."""
        if not doc.files_root:
            return dict(sources)
        out = {}
        for rel, sha in sources:
            if rel.startswith("glob:"):
                out[rel] = sha
                continue
            full = os.path.normpath(os.path.join(doc.files_root, rel))
            inside = os.path.relpath(full, self.root)
            out[full if inside.startswith("..") else inside.replace(os.sep, "/")] = sha
        return out

    def _listed_params(self, s, err, templated: set) -> list:
        """The refs (params.a.b) of the keys a step lists under `params:` (DVC's params: it
        depends on them without templating them); each one that names nothing is an error,
        and so is one of a params file that `-p` overrides: the step reads the file itself,
        so the override would reach its key but not its command (a wrong result cached)."""
        listed = s.data.get("params") or []
        good = []
        refs = self.refs[s.doc.namespace]
        for i, name in enumerate(listed):
            ref = "params." + name
            problem = refs.param_problem(ref, ref.split("."))
            if problem:
                err(problem[0], s.base + ("params", i), problem[1])
                continue
            hit = next((o for o in sorted(s.doc.overridden) if o == name or o.startswith(name + ".")
                        or name.startswith(o + ".")), None)
            if hit and name.split(".")[0] in s.doc.file_params and not any(
                    t == ref or t.startswith(ref + ".") or ref.startswith(t + ".") for t in templated):
                err(f"-p {hit}=… cannot reach step '{s.local}': it lists {name} under `params:`, "
                    f"so it reads the params file itself", s.base + ("params", i),
                    f"change {name} in the params file, or pass it to the command as "
                    f"${{{{ params.{name} }}}}")
                continue
            good.append(ref)
        return good

    def _step(self, s, needs: set, uses: set, refs: list, config, listed: list = ()) -> Step:
        """config: what the step's kind resolved (its frozen CONFIG); listed: the params it
        lists (refs): their values join its static vars (so its key) without a template."""
        data = s.data
        refs_of_doc = self.refs[s.doc.namespace].bound(s.item)
        # The listed params are vars too (set for the command; reasons name them by ref).
        step_of = self._step_of(s.doc, self.step_ids)
        tvars = tuple(_template_var(ref, step_of) for ref in dict.fromkeys([*refs, *listed]))
        static = {v.env: refs_of_doc.static_value(v.ref) for v in tvars if v.ref.split(".")[0] in PATH_REFS}
        if s.item is not None:  # every field of its item: each instance has a key (and variables) of its own
            static.update((templates.env_name(ref), value) for ref, value in s.item.values)
        outputs = list(s.outputs)
        if targets_mod.edits_files(config):  # a coding agent: what it changed is an output too
            outputs.append(targets_mod.changes_dir(s.id))
        return Step(
            id=s.id,
            kind=s.kind,
            definition=keys.definition(s.kind, data, s.inputs, outputs, static, config),
            inputs=tuple(s.inputs),
            outputs=tuple(outputs),
            needs=tuple(sorted(needs)),
            data_needs=tuple(sorted(uses)),
            vars=tvars,
            static_vars=static,
            timeout=data.get("timeout"),
            always=bool(data.get("always")),
            depfile=s.depfile,
            exclude=tuple(s.exclude),
            target=s.target,
            description=data.get("description", ""),
            config=config,
        )


def _template_var(ref: str, step_of) -> TemplateVar:
    """A reference as the runner reads it: a `steps.…` one with the step's id in the
    pipeline and its field; its environment variable is named after the text written."""
    env = templates.env_name(ref)
    if not ref.startswith("steps."):
        return TemplateVar(ref, env)
    sid, at = step_of(ref)
    return TemplateVar(ref, env, sid or "", tuple(ref.split(".")[at:]) if sid else ())
