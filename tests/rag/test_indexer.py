"""amelia.rag.indexer: incremental indexing into a real embedded Qdrant with the real
bundled model (issue 12 item 4): unchanged, changed, removed, rechunked, skipped documents,
a rebuilt manifest, cancellation, and a kill -9 mid-index that leaves no duplicates."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from amelia.rag import manifest as mf
from amelia.rag.sources import DEFAULT_MODEL, Document, SourceConfig

REPO = Path(__file__).resolve().parents[2]

TOPICS = {
    "docs/cats.md": "# Cats\n\nCats purr when content. A cat sleeps sixteen hours a day and hunts mice at dusk.",
    "docs/rockets.md": "# Rockets\n\nA rocket burns kerosene with liquid oxygen.\n\n## Staging\n\n"
                       "The first stage falls away after two minutes; the second stage reaches orbit.",
    "docs/bread.md": "# Bread\n\nSourdough needs a starter of flour and water, fed daily and fermented slowly.",
    "notes/tax.txt": "Value added tax is collected at each stage of production and refunded on exports.",
    "notes/chess.md": "# Chess\n\nThe Sicilian Defence answers 1.e4 with c5, fighting for the d4 square.",
}


@pytest.fixture(scope="module")
def embedder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from amelia.rag.embedder import load_embedder

    return load_embedder(DEFAULT_MODEL, str(REPO))  # loaded once; cached for the process


@pytest.fixture(autouse=True)
def _closed_stores():
    yield
    from amelia.rag.vectors import close_all

    close_all()


class Corpus:
    def __init__(self, root: Path):
        self.root = root
        self.store_dir = str(root / ".amelia")

    def write(self, rel: str, text: str | bytes) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode() if isinstance(text, str) else text)

    def documents(self) -> list[Document]:
        out = []
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and ".amelia" not in p.parts:
                out.append(Document(p.relative_to(self.root).as_posix(),
                                    hashlib.sha256(p.read_bytes()).hexdigest(), str(p)))
        return out

    def points(self, config: SourceConfig) -> list[tuple[str, dict]]:
        from amelia.rag.vectors import open_store

        store = open_store(config.location, mf.store_path(config.location, self.store_dir))
        (coll,) = [f[:-5] for f in os.listdir(mf.manifest_dir(config.location, self.store_dir))
                   if f.endswith(".json")]
        return list(store.scroll(coll, ["name", "sha256", "chunk", "recipe"]))

    def manifest(self, config: SourceConfig) -> tuple[str, dict]:
        found = mf.find(config.name, config.model, config.location, self.store_dir)
        assert found is not None
        return found


@pytest.fixture
def corpus(tmp_path):
    c = Corpus(tmp_path / "proj")
    for rel, text in TOPICS.items():
        c.write(rel, text)
    return c


def index(corpus: Corpus, config: SourceConfig, **kw):
    from amelia.rag.indexer import index_source

    return index_source(config, corpus.documents(), corpus.store_dir, **kw)


def expected_chunks(corpus: Corpus, config: SourceConfig) -> dict[str, int]:
    from amelia.rag.chunking import chunk

    out = {}
    for d in corpus.documents():
        text = Path(d.path).read_text()
        out[d.name] = len(chunk(text, config.chunk_size, config.overlap, markdown=d.name.endswith(".md")))
    return out


def assert_consistent(corpus: Corpus, config: SourceConfig) -> None:
    """Exactly the current documents' chunks are in: one point per (name, chunk), each of the
    document's current bytes, and the manifest says the same."""
    points = corpus.points(config)
    current = {d.name: d.sha256 for d in corpus.documents()}
    keys = Counter((p["name"], p["chunk"]) for _, p in points)
    assert all(n == 1 for n in keys.values()), f"duplicates: {[k for k, n in keys.items() if n > 1]}"
    assert all(p["sha256"] == current.get(p["name"]) for _, p in points)
    want = expected_chunks(corpus, config)
    assert Counter(p["name"] for _, p in points) == Counter({n: c for n, c in want.items() if c})
    _, m = corpus.manifest(config)
    assert m["pending"] == {}
    assert {n: e["chunks"] for n, e in m["documents"].items()} == want


def test_first_index_then_nothing_changed(corpus, embedder):
    config = SourceConfig(name="docs", chunk_size=120, overlap=30)
    calls = []
    r = index(corpus, config, progress=lambda *a: calls.append(a))
    want = expected_chunks(corpus, config)
    assert sorted(r.added) == sorted(TOPICS) and r.changed == () and r.removed == ()
    assert r.unchanged == 0 and r.skipped == ()
    assert r.chunks_embedded == r.chunks_total == sum(want.values()) > len(TOPICS)
    assert calls and calls[-1][:2] == (len(TOPICS), len(TOPICS))
    assert_consistent(corpus, config)
    payloads = {p["name"]: p for _, p in corpus.points(config)}
    assert payloads["docs/rockets.md"]["recipe"].startswith("120/30/")

    again = index(corpus, config)
    assert again.chunks_embedded == 0 and again.unchanged == len(TOPICS)
    assert again.added == again.changed == again.removed == ()
    assert again.chunks_total == r.chunks_total


def test_nothing_changed_imports_neither_qdrant_nor_fastembed(corpus, embedder):
    config = SourceConfig(name="docs")
    index(corpus, config)
    from amelia.rag.vectors import close_all

    close_all()
    script = (
        "import sys, json\n"
        "from amelia.rag.indexer import index_source\n"
        "from amelia.rag.sources import SourceConfig, Document\n"
        "docs = [Document(*d) for d in json.loads(sys.argv[2])]\n"
        "r = index_source(SourceConfig(name='docs'), docs, sys.argv[1])\n"
        "print(json.dumps([r.chunks_embedded, r.unchanged, 'qdrant_client' in sys.modules, 'fastembed' in sys.modules]))\n"
    )
    docs = json.dumps([[d.name, d.sha256, d.path] for d in corpus.documents()])
    out = subprocess.run([sys.executable, "-c", script, corpus.store_dir, docs],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [0, len(TOPICS), False, False]


def test_changed_and_removed_documents(corpus, embedder):
    config = SourceConfig(name="docs", chunk_size=120, overlap=30)
    index(corpus, config)
    corpus.write("docs/cats.md", TOPICS["docs/cats.md"] + "\n\nCats also groom each other to bond. " * 3)
    os.remove(corpus.root / "notes/tax.txt")
    corpus.write("notes/new.md", "# Tides\n\nThe moon's gravity raises two tidal bulges on the oceans.")
    r = index(corpus, config)
    want = expected_chunks(corpus, config)
    assert r.changed == ("docs/cats.md",) and r.removed == ("notes/tax.txt",) and r.added == ("notes/new.md",)
    assert r.unchanged == 3
    assert r.chunks_embedded == want["docs/cats.md"] + want["notes/new.md"]
    assert r.chunks_total == sum(want.values())
    assert_consistent(corpus, config)


def test_changed_chunking_reindexes_everything(corpus, embedder):
    index(corpus, SourceConfig(name="docs", chunk_size=120, overlap=30))
    config = SourceConfig(name="docs", chunk_size=300, overlap=0)
    r = index(corpus, config)
    assert sorted(r.changed) == sorted(TOPICS) and r.unchanged == 0
    assert r.chunks_embedded == sum(expected_chunks(corpus, config).values())
    assert_consistent(corpus, config)
    assert all(p["recipe"].startswith("300/0/") for _, p in corpus.points(config))


def test_another_model_is_another_collection(corpus, embedder):
    assert mf.collection_name("docs", "all-MiniLM-L6-v2", 384) != mf.collection_name("docs", "BAAI/bge-small-en-v1.5", 384)
    assert mf.collection_name("docs", "m", 384) != mf.collection_name("docs", "m", 768)
    name = mf.collection_name("my docs", "path:models/x", 384)
    assert name.startswith("amelia_my_docs_") and name.endswith("_384")
    assert all(c.isalnum() or c == "_" for c in name)


def test_missing_manifest_is_rebuilt_from_the_points(corpus, embedder):
    config = SourceConfig(name="docs", chunk_size=120, overlap=30)
    first = index(corpus, config)
    path, _ = corpus.manifest(config)
    os.remove(path)
    r = index(corpus, config)
    assert r.chunks_embedded == 0 and r.unchanged == len(TOPICS)  # nothing re-embedded
    assert r.chunks_total == first.chunks_total
    assert_consistent(corpus, config)


def test_skipped_document_is_reported_and_the_rest_indexed(corpus, embedder):
    corpus.write("docs/tool.md", b"\x7fELF\x02\x01\x01\x00" + bytes(200))
    config = SourceConfig(name="docs")
    r = index(corpus, config)
    assert [n for n, _ in r.skipped] == ["docs/tool.md"] and r.skipped[0][1]
    assert sorted(r.added) == sorted(TOPICS)
    again = index(corpus, config)  # still reported, not converted again
    assert [n for n, _ in again.skipped] == ["docs/tool.md"] and again.chunks_embedded == 0
    assert "docs/tool.md" not in {p["name"] for _, p in corpus.points(config)}


def test_cancel_leaves_a_consistent_index_that_the_next_run_completes(corpus, embedder, monkeypatch):
    from amelia.rag import indexer

    monkeypatch.setattr(indexer, "GROUP_CHUNKS", 2)
    for i in range(6):
        corpus.write(f"more/m{i}.md", f"# Note {i}\n\nParagraph {i} about topic number {i} in detail.")
    config = SourceConfig(name="docs", chunk_size=120, overlap=30)
    polls = []
    r = index(corpus, config, cancelled=lambda: polls.append(1) or len(polls) > 6)
    assert r.cancelled and 0 < len(r.added) < len(corpus.documents())
    _, m = corpus.manifest(config)
    points = corpus.points(config)
    assert m["pending"] == {}
    assert Counter(p["name"] for _, p in points) == Counter(
        {n: e["chunks"] for n, e in m["documents"].items() if e["chunks"]})
    done = index(corpus, config)
    assert not done.cancelled and len(done.added) == len(corpus.documents()) - len(r.added)
    assert_consistent(corpus, config)


KILL_SCRIPT = r"""
import os, signal, sys, json
from amelia.rag import indexer, manifest, vectors
from amelia.rag.sources import SourceConfig, Document
mode, store_dir, docs = sys.argv[1], sys.argv[2], [Document(*d) for d in json.loads(sys.argv[3])]
indexer.GROUP_CHUNKS = 3
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "mid-upsert":  # the second group's points half written
    real = vectors.Store.upsert
    n = [0]
    def upsert(self, c, ids, vecs, pays):
        n[0] += 1
        if n[0] == 2:
            real(self, c, ids[: len(ids) // 2 or 1], vecs[: len(ids) // 2 or 1], pays[: len(ids) // 2 or 1])
            die()
        real(self, c, ids, vecs, pays)
    vectors.Store.upsert = upsert
elif mode == "after-delete":  # new points in, old ones deleted, manifest not committed
    real = vectors.Store.delete
    def delete(self, c, ids):
        real(self, c, ids)
        if sys._getframe(1).f_code.co_name == "_write":
            die()
    vectors.Store.delete = delete
indexer.index_source(SourceConfig(name="docs", chunk_size=120, overlap=30), docs, store_dir)
print("finished")
"""


@pytest.mark.parametrize("mode", ["mid-upsert", "after-delete"])
def test_kill_9_mid_index_leaves_no_duplicates(corpus, embedder, mode):
    config = SourceConfig(name="docs", chunk_size=120, overlap=30)
    index(corpus, config)
    # the next version: every document changed, one removed, two added
    for rel, text in TOPICS.items():
        corpus.write(rel, text + "\n\nA second paragraph, changed for the new version of " + rel + ".")
    os.remove(corpus.root / "notes/chess.md")
    corpus.write("notes/tides.md", "# Tides\n\nThe moon's gravity raises two tidal bulges.")
    corpus.write("notes/bees.md", "# Bees\n\nHoney bees dance to tell the hive where flowers are.")
    from amelia.rag.vectors import close_all

    close_all()  # the child takes the store's lock
    docs = json.dumps([[d.name, d.sha256, d.path] for d in corpus.documents()])
    out = subprocess.run([sys.executable, "-c", KILL_SCRIPT, mode, corpus.store_dir, docs],
                         capture_output=True, text=True, timeout=180, cwd=REPO)
    assert out.returncode == -9, out.stderr  # killed mid-index, not finished
    assert "finished" not in out.stdout
    # and the documents change again before the next run: the killed run's points are stale
    for d in corpus.documents():
        corpus.write(d.name, Path(d.path).read_text() + "\n\nThird version.")
    r = index(corpus, config)
    assert not r.cancelled
    assert_consistent(corpus, config)
    again = index(corpus, config)
    assert again.chunks_embedded == 0
