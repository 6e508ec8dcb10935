"""RAG in the step graph (DESIGN §5): `sources:` become index nodes, `context:` retrieve nodes.

Every source is an `index` step, `source:NAME`: its inputs are the source's files (its
`exclude:` left out), its one output a digest of what it indexed (kept beside the
embedded store, so deleting the store makes the source stale). A step that reads a
source lists that digest as an input: the engine's overlap rule makes the index its
upstream, and its key changes only when the index does.

An agent step with `context:` (or whose persona lists `sources:`) gets a retrieve step
of its own, `context:ID`, that writes what the retrieval found to a file under
.amelia/context/; the agent reads that file as one more input. So when a source
changes, the retrieval runs again (cheap), and the agent runs again only when what it
retrieved changed (the engine's early cut-off), not when an unrelated document did.

Ids of generated steps hold a colon, which no step written under `steps:` may hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import paths
from ..errors import did_you_mean
from ..rag.sources import DEFAULT_MODEL, SOURCE_PREFIX, Location, SourceConfig
from ..steps import KINDS
from .shape import Shaped, _path

CONTEXT_PREFIX = "context:"
INDEX_KIND = "index"  # the kind of a source's step
CONTEXT_KIND = "retrieve"  # the kind of the step that retrieves an agent step's context
QDRANT_DIR = ".amelia/qdrant"  # the embedded store, at the project root
DEFAULT_API_KEY_ENV = "QDRANT_API_KEY"


@dataclass
class Generated(Shaped):
    """A step made from something other than an entry of `steps:`."""

    written: dict = field(default_factory=dict)  # what it was made from, as its data
    at: tuple = ()  # the key path it was made from: where its errors point

    @property
    def data(self) -> dict:
        return self.written

    @property
    def base(self) -> tuple:
        return self.at


def source_id(doc, name: str) -> str:
    return doc.step_id(SOURCE_PREFIX + name)


def digest_path(doc, name: str) -> str:
    """Where the index step of a source writes its digest."""
    server = bool((doc.data.get("qdrant") or {}).get("url"))
    base = ".amelia/index" if server else QDRANT_DIR + "/amelia/digests"
    return f"{base}/{paths.file_name(doc.step_id(name))}.json"


def context_path(step_id: str) -> str:
    """Where the retrieve step of an agent step writes what it found."""
    return f".amelia/context/{paths.file_name(step_id)}.json"


def location(doc, root: str) -> Location:
    q = doc.data.get("qdrant") or {}
    if q.get("url"):
        return Location(url=q["url"], api_key_env=q.get("api_key_env") or DEFAULT_API_KEY_ENV)
    return Location(path=os.path.join(root, QDRANT_DIR))


def source_config(doc, name: str, root: str) -> SourceConfig:
    """A source as written, its paths rendered (`${{ params.X }}`), with defaults (checked by
    `check_source`; a bad reference in a path is reported by `source_steps`)."""
    from .references import References

    data = (doc.data.get("sources") or {})[name]
    chunk = data.get("chunk") or {}
    refs = References(doc, lambda *_a, **_k: None)

    def rendered(key: str) -> tuple:
        return tuple(paths.normalize(refs.render_path(p, ()) or p) for p in data.get(key) or ())

    return SourceConfig(
        name=doc.step_id(name),
        paths=rendered("paths"),
        exclude=rendered("exclude"),
        urls=tuple(data.get("urls") or ()),
        chunk_size=chunk.get("size", 800),
        overlap=chunk.get("overlap", 200),
        model=data.get("model", DEFAULT_MODEL),
        location=location(doc, root),
    )


def source_steps(doc, root: str, refs, err, memo: dict) -> list:
    """The index step of each source of a document."""
    out = []
    for name, data in (doc.data.get("sources") or {}).items():
        at = ("sources", name)
        s = Generated(source_id(doc, name), SOURCE_PREFIX + name, doc, INDEX_KIND, [], written=data, at=at)
        for i, text in enumerate(data.get("paths") or ()):
            found = _path(text, at + ("paths", i), False, root, refs, err, memo)
            if found is not None:
                s.inputs.append(found[0])
                s.input_paths.append(at + ("paths", i))
                s.real_inputs.append(found[1])
        for i, text in enumerate(data.get("exclude") or ()):
            found = _path(text, at + ("exclude", i), False, root, refs, err, memo)
            if found is not None:
                s.exclude.append(found[0])
        for f in _model_files(data, root, err, at):
            s.inputs.append(f)
            s.input_paths.append(at + ("model",))
            s.real_inputs.append(f)
        out_path = digest_path(doc, name)
        s.outputs.append(out_path)
        s.output_paths.append(at)
        s.real_outputs.append(out_path)
        out.append(s)
    return out


def _model_files(data: dict, root: str, err, at: tuple) -> list:
    """A model given as a project path: its files are inputs (replacing it re-indexes)."""
    model = data.get("model")
    if not isinstance(model, str) or model == DEFAULT_MODEL:
        return []
    from ..rag import embedder

    problem = embedder.model_problem(model, root) or embedder.name_problem(model, root)
    if problem:
        err(problem, at + ("model",), "use the bundled model (leave `model:` out), a fastembed "
                                      "model name, or a directory holding an .onnx model and its tokenizer")
        return []
    return list(embedder.model_files(model, root))


def check_source(doc, name: str, err) -> None:
    """What the schema cannot say about a source."""
    from ..rag.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, validate_chunking

    data = (doc.data.get("sources") or {})[name]
    at = ("sources", name)
    chunk = data.get("chunk") or {}
    size, overlap = chunk.get("size", DEFAULT_SIZE), chunk.get("overlap", DEFAULT_OVERLAP)
    problem = validate_chunking(size, overlap)
    if problem == "overlap must be smaller than size":
        problem = f"overlap ({overlap}) must be smaller than size ({size})"
    if problem:
        where = "overlap" if "overlap" in problem and "overlap" in chunk else "size" if "size" in chunk else None
        err(f"chunk {problem}", at + ("chunk",) + ((where,) if where else ()),
            "chunk sizes are in characters: e.g. chunk: {size: 800, overlap: 200}")
    if not data.get("paths") and not data.get("urls"):
        err(f"source '{name}' names no documents", at, "give it `paths:` (globs) or `urls:`")
    urls = data.get("urls") or ()
    if urls:
        from ..rag import urls as rag_urls

        for i, u in enumerate(urls):
            problem = rag_urls.url_problem(u)
            if problem:
                err(f"URL {problem}", at + ("urls", i),
                    "sources fetch only http:// and https:// pages; list local files under `paths:`")


def check_agents(doc, err) -> None:
    """Every source a persona lists exists (whether or not a step uses the persona)."""
    sources = doc.data.get("sources") or {}
    for name, agent in (doc.data.get("agents") or {}).items():
        if not isinstance(agent, dict):
            continue
        for i, s in enumerate(agent.get("sources") or ()):
            if s not in sources:
                err(f"agent '{name}' reads unknown source '{s}'", ("agents", name, "sources", i),
                    did_you_mean(str(s), list(sources)) or
                    ("declare it under `sources:`" if not sources else f"sources are: {', '.join(sources)}"))


# -- steps that read sources -------------------------------------------------------------

def context_items(doc, data: dict, base: tuple) -> list:
    """(item, key path) of each retrieval an agent step asks for: its `context:`, else one
    per source its persona lists (query: the prompt)."""
    if isinstance(data.get("context"), list):
        return [(item, base + ("context", i)) for i, item in enumerate(data["context"])]
    persona = _persona(doc, data, base)
    if persona is None or not persona[0].get("sources"):
        return []
    prompt = data.get("prompt")
    return [({"source": s, "query": prompt, "from_prompt": True}, persona[1] + ("sources", i))
            for i, s in enumerate(persona[0]["sources"])]


def _persona(doc, data: dict, base: tuple):
    """(the agent's mapping, its key path), or None."""
    agent = data.get("agent")
    if isinstance(agent, dict):
        return agent, base + ("agent",)
    if isinstance(agent, str):
        found = (doc.data.get("agents") or {}).get(agent)
        if isinstance(found, dict):
            return found, ("agents", agent)
    return None


def reading_steps(shaped: dict, docs, err_of) -> list:
    """The retrieve steps to add (one per agent step with context), after linking every
    step that reads a source to that source's digest (an input)."""
    made = []
    for s in list(shaped.values()):
        how = KINDS[s.kind].retrieves
        if how == "context":
            items = context_items(s.doc, s.data, s.base)
            if not items:
                continue
            err = err_of(s.doc)
            allowed = _persona_sources(s)
            digests = _digests(s.doc, items, err, allowed)
            if digests is None:
                continue
            ctx = Generated(CONTEXT_PREFIX + s.id, CONTEXT_PREFIX + s.local, s.doc, CONTEXT_KIND, [],
                            item=s.item, written={"context": [i for i, _ in items]},
                            at=s.base + (("context",) if "context" in s.data else ("agent",)))
            ctx.inputs += digests
            ctx.input_paths += [ctx.at] * len(digests)
            ctx.real_inputs += digests
            out = context_path(s.id)
            ctx.outputs.append(out)
            ctx.output_paths.append(ctx.at)
            ctx.real_outputs.append(out)
            made.append(ctx)
            s.inputs.append(out)
            s.input_paths.append(ctx.at)
            s.real_inputs.append(out)
        elif how == "query":
            item = s.data.get(s.kind)
            err = err_of(s.doc)
            digests = _digests(s.doc, [(item, s.base + (s.kind,))], err, None)
            for d in digests or ():
                s.inputs.append(d)
                s.input_paths.append(s.base + (s.kind,))
                s.real_inputs.append(d)
    return made


def _persona_sources(s):
    """(the sources its persona lists, the persona's name or ""), or None."""
    persona = _persona(s.doc, s.data, s.base)
    if persona is None or "sources" not in persona[0]:
        return None
    name = persona[1][1] if persona[1][0] == "agents" else ""
    return list(persona[0]["sources"]), name


def _digests(doc, items, err, allowed) -> list | None:
    """The digest of each distinct source the items read; None after an error."""
    sources = doc.data.get("sources") or {}
    out, ok = [], True
    for item, p in items:
        if not isinstance(item, dict):
            continue
        name = item.get("source")
        if name not in sources:
            ok = False
            err(f"unknown source '{name}'", p + (("source",) if "source" in item and not item.get(
                "from_prompt") else ()),
                did_you_mean(str(name), list(sources)) or
                ("declare it under `sources:`" if not sources else f"sources are: {', '.join(sources)}"))
            continue
        if allowed is not None and name not in allowed[0] and not item.get("from_prompt"):
            ok = False
            who = f"agent '{allowed[1]}'" if allowed[1] else "the step's agent"
            err(f"{who} may not read source '{name}'", p + ("source",),
                f"its `sources:` lists {', '.join(allowed[0]) or 'none'}; add '{name}' there")
            continue
        d = digest_path(doc, name)
        if d not in out:
            out.append(d)
    return out if ok else None
