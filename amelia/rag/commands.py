"""`amelia index` and `amelia query`: the RAG sources of a pipeline from the command line.

`index` is `run` limited to the sources' index steps (and whatever writes their files),
so the engine's cache, lock, events and reporters all apply; it then says, for each
source, what its index holds. `query` searches one source's index.
"""

from __future__ import annotations

import json
import os
import sys

from ..errors import EnvironmentProblem, UsageError, did_you_mean
from .sources import SOURCE_PREFIX, source_configs


def _source_ids(pipeline, names) -> tuple:
    configs = source_configs(pipeline)
    if not configs:
        raise UsageError(f"{pipeline.file} declares no sources",
                         hint="declare one under `sources:`, e.g. sources: {docs: {paths: [\"docs/**/*.md\"]}}")
    for n in names:
        if n not in configs:
            raise UsageError(f"unknown source '{n}'",
                             hint=did_you_mean(n, list(configs)) or f"sources are: {', '.join(configs)}")
    return tuple(SOURCE_PREFIX + n for n in (names or configs))


def index(file: str | None, names=(), refresh: bool = False, as_json: bool = False,
          jobs: int = 0, argv=(), out=None) -> dict:
    """Bring the named sources (all by default) up to date; then say what each holds."""
    from .. import api

    out = out or sys.stdout
    # The resolution `run` is about to use (the store's cache), not a second one: `validate`
    # would parse and check the file again on every `amelia index`.
    pipeline, store = api.open_project(file)
    store.close()
    ids = _source_ids(pipeline, tuple(names))
    opts = api.RunOptions(file=file, only=ids, force=ids if refresh else (), refresh=refresh,
                          json=as_json, jobs=jobs, argv=tuple(argv))
    result = api.run(opts, out)
    summary = [_held(pipeline, sid) for sid in ids]
    if as_json:
        out.write(json.dumps({"type": "sources", "sources": summary}) + "\n")
    else:
        for s in summary:
            skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
            out.write(f"source  {s['source']}  {s['documents']} document"
                      f"{'s' if s['documents'] != 1 else ''} indexed{skipped}\n")
    out.flush()
    result["sources"] = summary
    return result


def _held(pipeline, sid: str) -> dict:
    """What a source's digest says its index holds."""
    step = pipeline.step(sid)
    name = sid[len(SOURCE_PREFIX):]
    try:
        with open(os.path.join(pipeline.root, step.outputs[0]), encoding="utf-8") as f:
            digest = json.load(f)
    except (OSError, ValueError):
        return {"source": name, "documents": 0, "skipped": 0, "indexed": False}
    return {"source": name, "documents": len(digest.get("documents") or {}),
            "skipped": len(digest.get("skipped") or {}), "indexed": True,
            "collection": digest.get("collection")}


def query(file: str | None, name: str, text: str, k: int = 5, as_json: bool = False, out=None) -> list:
    """The k chunks of source `name` closest to `text`, best first."""
    from .. import api
    from ..safetext import escape
    from .errors import RagError
    from .retrieval import is_indexed, search

    out = out or sys.stdout
    pipeline = api.validate(file)
    _source_ids(pipeline, (name,))
    config = source_configs(pipeline)[name]
    store_dir = os.path.join(pipeline.root, ".amelia")
    if not is_indexed(config, store_dir):
        raise EnvironmentProblem(f"source '{name}' is not indexed yet",
                                 hint=f"run `amelia index --source {name}` (or `amelia run`)")
    try:
        hits = search(config, store_dir, text, top_k=k)
    except RagError as e:
        raise EnvironmentProblem(f"source '{name}': {e.message}", hint=e.hint) from None
    if as_json:
        out.write(json.dumps([{"name": h.name, "chunk": h.chunk, "headings": list(h.headings),
                               "score": round(h.score, 4), "text": h.text, "id": h.id,
                               "content_hash": h.content_hash} for h in hits], ensure_ascii=False,
                             indent=2) + "\n")
        return hits
    if not hits:
        out.write("no chunks found\n")
    for i, h in enumerate(hits, 1):
        where = escape(h.name) + "".join(f" › {escape(x)}" for x in h.headings)
        body = escape(" ".join(h.text.split()))
        if len(body) > 300:
            body = body[:297].rstrip() + "..."
        out.write(f"{i}. {where}  (score {h.score:.3f})\n   {body}\n")
    out.flush()
    return hits
