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

import os

from .. import features, keys, steps, templates
from ..loader import Loaded
from ..spec import Pipeline, Step, TemplateVar
from ..steps import KINDS
from .dependencies import OutputIndex, data_needs, declared_needs, order
from .document import Document, DocumentGraph, Problems, project_root
from .kinds import KindContext
from .models import model_configs
from .params import PLACEHOLDERS, coerce_param, param_values  # noqa: F401  (public)
from .references import PATH_REFS, References
from .shape import check_output_clashes, shape

__all__ = ["resolve", "coerce_param", "PLACEHOLDERS", "Document", "DocumentGraph"]


def resolve(loaded: Loaded, pipeline_file: str, overrides: dict, digest: str, sources: tuple,
            root: str | None = None, model_overrides: dict | None = None,
            placeholders: bool = False) -> Pipeline:
    """The pipeline of a loaded, schema-valid file.

    overrides: param name → `-p` text; model_overrides: model name → the model it
    stands for (`--model`); placeholders: params without a value get a stand-in (for
    checking, never running). Raises every error found, located, at once.
    """
    problems = Problems()
    root = project_root(loaded.data, pipeline_file, root)
    top = open_document(loaded, pipeline_file, "", overrides, model_overrides or {}, placeholders, problems)
    return _Resolution(DocumentGraph((top,)), root, problems).pipeline(digest, sources)


def open_document(loaded: Loaded, file: str, namespace: str, overrides: dict, model_overrides: dict,
                  placeholders: bool, problems: Problems) -> Document:
    """A loaded file as a Document: its params, env and models resolved in its own scope."""
    err = problems.reporter(loaded.source)
    params = param_values(loaded.data, overrides, placeholders, err)
    for key, path in features.find(loaded.data):
        err(key.message(), path, key.hint)
    env_names = tuple(loaded.data.get("env") or ())
    models = model_configs(loaded.data, model_overrides, err)
    return Document(file, loaded, namespace, params, env_names, models)


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
        for doc in docs:
            for local in doc.steps():
                s = shape(doc, local, self.root, self.refs[doc.namespace], self.problems.reporter(doc))
                if s is not None:
                    shaped[s.id] = s
        step_ids = [doc.step_id(local) for doc in docs for local in doc.steps()]
        # Steps whose outputs all resolved; a path error was reported already.
        outputs_of = {sid: s.outputs for sid, s in shaped.items() if not s.path_errors}
        check_output_clashes(shaped, self.problems)
        writers = OutputIndex(shaped)

        edges, data_edges, vars_of, config_of = {}, {}, {}, {}
        why: dict = {}  # (step, dep) -> (how, Location): the first link found
        extra_sources: dict = {}  # files the kinds read (prompt, schema) → sha256
        for sid, s in shaped.items():
            err = self.problems.reporter(s.doc)
            needs = declared_needs(s, step_ids, err, why)
            kind = KINDS[s.kind]
            resolved = steps.resolve(s.kind, KindContext(s.doc, self.root, s.base, err), s.local, s.data)
            config_of[sid] = resolved.config
            extra_sources.update(resolved.sources)
            refs = []
            for text, tpath, tfile in resolved.texts:
                refs += self.refs[s.doc.namespace].check(text, tpath, kind.allowed_refs, step_ids,
                                                         outputs_of, tfile)
            uses = data_needs(s, refs, writers, why)
            edges[sid] = needs | uses
            data_edges[sid] = uses
            vars_of[sid] = list(dict.fromkeys(ref for ref, _ in refs))

        built = tuple(self._step(shaped[sid], edges[sid], data_edges[sid], vars_of[sid], config_of[sid])
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
            sources=tuple(sources) + tuple(sorted(extra_sources.items())),
        )

    def _step(self, s, needs: set, uses: set, refs: list, config) -> Step:
        """config: what the step's kind resolved (its frozen CONFIG)."""
        data = s.data
        refs_of_doc = self.refs[s.doc.namespace]
        tvars = tuple(TemplateVar(ref, templates.env_name(ref)) for ref in refs)
        static = {v.env: refs_of_doc.static_value(v.ref) for v in tvars if v.ref.split(".")[0] in PATH_REFS}
        return Step(
            id=s.id,
            kind=s.kind,
            definition=keys.definition(s.kind, data, s.inputs, s.outputs, static, config),
            inputs=tuple(s.inputs),
            outputs=tuple(s.outputs),
            needs=tuple(sorted(needs)),
            data_needs=tuple(sorted(uses)),
            vars=tvars,
            static_vars=static,
            timeout=data.get("timeout"),
            description=data.get("description", ""),
            config=config,
        )
