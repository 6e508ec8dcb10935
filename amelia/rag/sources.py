"""A RAG source as resolved from `sources:`: frozen data, no I/O, no heavy imports.

The index step kind carries a SourceConfig as its config (so it round-trips through the
resolved-pipeline cache as plain JSON); the indexer, retrieval, `amelia query` and chat
read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # the bundled embedding model (rag/embedder.py)
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Location:
    """Where a source's vectors live: the embedded store, or a Qdrant server."""

    path: str = ""  # absolute directory of the embedded store (<root>/.amelia/qdrant)
    url: str = ""  # a Qdrant server instead
    api_key_env: str = ""  # the env var holding the server's API key (its value is never stored)


@dataclass(frozen=True)
class SourceConfig:
    name: str
    paths: tuple = ()  # globs, project-relative
    exclude: tuple = ()
    urls: tuple = ()
    chunk_size: int = 800
    overlap: int = 200
    model: str = DEFAULT_MODEL
    location: Location = field(default_factory=Location)

    @classmethod
    def from_dict(cls, d: dict) -> "SourceConfig":
        d = dict(d)
        for k in ("paths", "exclude", "urls"):
            d[k] = tuple(d.get(k) or ())
        d["location"] = Location(**(d.get("location") or {}))
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Document:
    """One thing to index."""

    name: str  # project-relative path, or the URL
    sha256: str  # content hash of its bytes
    path: str  # absolute path of its bytes on disk (the file, or the cached URL body)


SOURCE_PREFIX = "source:"  # the id of a source's index step (resolve/sources.py makes them)


def source_configs(pipeline) -> dict:
    """name → SourceConfig of each source of a resolved pipeline (in file order)."""
    return {s.id[len(SOURCE_PREFIX):]: s.config for s in pipeline.steps
            if s.kind == "index" and s.id.startswith(SOURCE_PREFIX)}
