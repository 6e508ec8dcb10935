"""`retrieve` steps: queries against RAG sources whose result is the output (DESIGN §5).

Two uses, one kind:
- written under `steps:` as `retrieve: {source, query, top_k, score_threshold, filter}`
  with an `output:` file: the hits as JSON (scores included);
- made by the resolver for an agent step with `context:` (id `context:ID`): what each of
  its queries found, written under .amelia/context/ for the agent to render as
  `${{ context }}`. No scores there: the agent's key follows the passages found (their
  ids and content hashes), not the last digits of a float.

A query is a template like a prompt (values, never shell). The sources' digests are the
step's inputs (resolve/sources.py), so it runs again when a source it reads changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from ..rag.sources import DEFAULT_TOP_K, SourceConfig
from . import Resolved, StepError, StepResult


@dataclass(frozen=True)
class RetrieveItem:
    source: str  # its name in the document
    query: str  # a template
    top_k: int = DEFAULT_TOP_K
    score_threshold: float | None = None
    filter: dict | None = None


@dataclass(frozen=True)
class RetrieveConfig:
    items: tuple  # RetrieveItem
    sources: tuple  # SourceConfig of each source the items read
    context: bool = False  # made for an agent step's `context:`

    @classmethod
    def from_dict(cls, d: dict) -> "RetrieveConfig":
        return cls(tuple(RetrieveItem(**i) for i in d["items"]),
                   tuple(SourceConfig.from_dict(s) for s in d["sources"]), d.get("context", False))

    def source(self, name: str) -> SourceConfig:
        return next(s for s in self.sources if s.name == name)


CONFIG = RetrieveConfig
KEY_REPLACES = ("retrieve", "context")


def key_material(config: RetrieveConfig) -> dict:
    # What is asked, as resolved (a persona's default query is the prompt's text); what the
    # sources hold enters the key through their digests, which are the step's inputs.
    return {"retrieve": [asdict(i) for i in config.items], "as_context": config.context}


def resolve(ctx, sid: str, data: dict) -> Resolved:
    from ..resolve.sources import source_config
    from ..resolve_agents import is_prompt_file

    if "retrieve" in data:
        raw = [(data["retrieve"], ctx.base + ("retrieve",))]
    else:
        at = ctx.base
        raw = [(item, at + (i,) if at[-1] == "context" else at) for i, item in enumerate(data["context"])]
    sources = ctx.doc.data.get("sources") or {}
    items, texts, files, configs, ok = [], [], [], {}, True
    for item, path in raw:
        name = item.get("source")
        if name not in sources:
            ok = False  # said where the step names it (resolve/sources.py)
            continue
        configs[name] = source_config(ctx.doc, name, ctx.root)
        query = item.get("query")
        if item.get("from_prompt"):
            if is_prompt_file(query):
                text, sha = ctx.read_text(query)
                if text is None:
                    ok = False  # the agent's own resolution says why
                    continue
                files.append((query, sha))
                query, where = _without_context(text), query
            else:
                query, where = _without_context(query), None
            texts.append((query, ctx.base[:2] + ("prompt",), where))
        else:
            texts.append((query, path + ("query",), None))
        flt = item.get("filter")
        if flt is not None:
            from ..rag.retrieval import filter_problem

            problem = filter_problem(flt)
            if problem:
                ctx.err(problem, path + ("filter",),
                        "filter on name (a path or a list), dir, format or heading, "
                        "e.g. filter: {dir: docs/api}")
                ok = False
                continue
        items.append(RetrieveItem(name, query, item.get("top_k", DEFAULT_TOP_K),
                                  item.get("score_threshold"), flt))
    if "retrieve" in data and "output" not in data:
        ctx.err("a retrieve step writes its hits to one `output:` file", ctx.base + ("retrieve",),
                "add e.g. output: build/hits.json")
        ok = False
    if not ok:
        return Resolved(None, tuple(texts), tuple(files))
    config = RetrieveConfig(tuple(items), tuple(configs[n] for n in dict.fromkeys(i.source for i in items)),
                            context="retrieve" not in data)
    return Resolved(config, tuple(texts), tuple(files))


def _without_context(prompt: str) -> str:
    """A prompt as a query: its `${{ context }}` is what the query finds, so it is left out
    (blanked, so that the offsets of its other references, for messages, stay the same)."""
    from ..templates import blank

    return blank(prompt, "context")


def execute(step, ctx, cancel) -> StepResult:
    from ..rag.errors import RagError
    from ..rag.retrieval import is_indexed, search
    from .agent import render

    cfg: RetrieveConfig = step.config
    cancel.check()
    values = ctx.template_values(step, limit=None)
    store_dir = os.path.join(ctx.root, ".amelia")
    results = []
    for item in cfg.items:
        source = cfg.source(item.source)
        if not is_indexed(source, store_dir):
            raise StepError(f"source '{item.source}' is not indexed",
                            hint=f"run `amelia index --source {item.source}`")
        query = render(item.query, values)
        try:
            hits = search(source, store_dir, query, top_k=item.top_k,
                          score_threshold=item.score_threshold, filter=item.filter)
        except RagError as e:
            raise StepError(f"source '{item.source}': {e.message}", hint=e.hint) from None
        cancel.check()
        found = {"source": item.source, "hits": [_hit(h, scores=not cfg.context) for h in hits]}
        if not cfg.context:  # an agent's context is what was found, not how it was asked for
            found["query"] = query
        results.append(found)
    out = results if cfg.context else results[0]
    from ..atomic import write_text

    write_text(os.path.join(ctx.root, step.outputs[0]), json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return StepResult()


def _hit(h, scores: bool) -> dict:
    d = {"name": h.name, "chunk": h.chunk, "headings": list(h.headings), "text": h.text,
         "id": h.id, "content_hash": h.content_hash}
    if scores:
        d["score"] = round(h.score, 4)
    return d


def render_context(path: str) -> str:
    """What a context step found, as the agent's prompt shows it: numbered passages, each
    with where it comes from (for citations)."""
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    blocks, n = [], 0
    for r in results:
        for h in r["hits"]:
            n += 1
            where = h["name"] + "".join(f" › {x}" for x in h["headings"])
            blocks.append(f"[{n}] {where}\n{h['text'].strip()}")
    return "\n\n".join(blocks) if blocks else "(no passages were found)"


