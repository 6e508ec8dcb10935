"""The Qdrant wrapper against a real embedded store (and a server url nobody listens on)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid

import pytest

from amelia.rag.errors import RagError
from amelia.rag.sources import Location
from amelia.rag.vectors import close_all, open_store


@pytest.fixture(autouse=True)
def _closed():
    yield
    close_all()


def _vec(i: int, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    v[(i + 1) % dim] = 0.5
    return v


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")) for i in range(n)]


def test_one_shared_store_per_directory(tmp_path):
    a = open_store(Location(path=str(tmp_path / "q")))
    b = open_store(Location(), default_path=str(tmp_path / "q" / "." ))
    assert a is b
    close_all()
    c = open_store(Location(path=str(tmp_path / "q")))
    assert c is not a  # reopened after close_all (the file lock was released)


def test_points_round_trip(tmp_path):
    store = open_store(Location(path=str(tmp_path / "q")))
    assert not store.exists("c")
    store.create("c", 8)
    assert store.exists("c")
    ids = _ids(6)
    store.upsert("c", ids, [_vec(i) for i in range(6)], [{"name": f"d{i}", "n": i} for i in range(6)])
    assert store.count("c") == 6
    hits = store.search("c", _vec(2), limit=3)
    assert hits[0].id == ids[2] and hits[0].payload["name"] == "d2"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)  # cosine of a vector with itself
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # the same ids again overwrite, never duplicate
    store.upsert("c", ids[:2], [_vec(i) for i in range(2)], [{"name": "again"}] * 2)
    assert store.count("c") == 6
    assert dict(store.scroll("c", ["name"]))[ids[0]] == {"name": "again"}
    store.delete("c", ids[:3] + [str(uuid.uuid4())])  # an unknown id is no error
    assert store.count("c") == 3
    assert sorted(i for i, _ in store.scroll("c", ["name"])) == sorted(ids[3:])
    assert store.search("c", _vec(2), limit=3, score_threshold=0.99) == []


def test_threads_share_the_embedded_store(tmp_path):
    store = open_store(Location(path=str(tmp_path / "q")))
    store.create("c", 8)
    errors = []

    def work(k):
        try:
            ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{k}-{i}")) for i in range(50)]
            for i in range(0, 50, 10):
                store.upsert("c", ids[i:i + 10], [_vec(j) for j in range(10)], [{"k": k}] * 10)
                store.search("c", _vec(k), limit=2)
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count("c") == 200


def _holder(path: str, seconds: float | None = None):
    """Another process holding the embedded store (until its stdin closes, or `seconds`)."""
    code = ("import sys, time; from qdrant_client import QdrantClient; c = QdrantClient(path=sys.argv[1]); "
            "print('ready', flush=True); " +
            (f"time.sleep({seconds}); c.close()" if seconds else "sys.stdin.read()"))
    return subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_a_store_let_go_of_soon_is_waited_for(tmp_path):
    path = str(tmp_path / "q")
    holder = _holder(path, seconds=0.5)
    try:
        assert holder.stdout.readline().strip() == "ready"
        store = open_store(Location(path=path))  # waits for the holder, up to BUSY_WAIT
        assert store.exists("nothing") is False
    finally:
        holder.wait(timeout=30)


def test_a_store_held_by_another_process_is_a_rag_error(tmp_path, monkeypatch):
    from amelia.rag import vectors

    monkeypatch.setattr(vectors, "BUSY_WAIT", 0.3)
    path = str(tmp_path / "q")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from qdrant_client import QdrantClient; c = QdrantClient(path=sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(RagError) as e:
            open_store(Location(path=path))
        assert "in use by another process" in e.value.message
        assert "Qdrant server" in e.value.hint
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_server_api_key_comes_from_the_named_env_var(monkeypatch):
    monkeypatch.delenv("AMELIA_TEST_QDRANT_KEY", raising=False)
    with pytest.raises(RagError) as e:
        open_store(Location(url="http://127.0.0.1:1", api_key_env="AMELIA_TEST_QDRANT_KEY"))
    assert "AMELIA_TEST_QDRANT_KEY" in e.value.message


def test_unreachable_server_is_a_rag_error_naming_it():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    store = open_store(Location(url=url))
    with pytest.raises(RagError) as e:
        store.exists("c")
    assert url in e.value.message and e.value.hint
