"""A record's input hashes are stored once per distinct set, in shared chunks (schema 4)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from amelia.store import Record
from amelia.store import inputsets
from amelia.store.state import SCHEMA_VERSION, StateDB


@pytest.fixture
def db(tmp_path):
    d = StateDB(str(tmp_path / "state.db"))
    yield d
    d.close()


def inputs_of(n: int, changed: dict | None = None) -> dict:
    out = {f"src/d{i // 1000:02d}/f{i:05d}.txt": hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)}
    out.update(changed or {})
    return out


def material(inputs: dict) -> dict:
    return {"v": 3, "kind": "run", "definition": "{}", "inputs": inputs, "upstream": {}, "env_names": []}


def rows(db, table: str) -> int:
    return db.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def table_bytes(db) -> int:
    """Bytes of the input sets and chunks and of the records' detail."""
    q = ("SELECT (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM input_chunks) + "
         "(SELECT COALESCE(SUM(LENGTH(chunks)), 0) FROM input_sets) + "
         "(SELECT COALESCE(SUM(LENGTH(detail)), 0) FROM records)")
    return db.conn.execute(q).fetchone()[0]


def test_a_record_gives_back_its_input_hashes(db):
    m = material(inputs_of(3000))
    db.records.save(Record("k1", "a", {"out.txt": "h"}, m, "r1", 0.5))
    got = db.records.get("k1")
    assert got.detail == m and list(got.detail["inputs"]) == sorted(m["inputs"])
    assert db.records.latest_detail("a") == m
    stored = json.loads(db.conn.execute("SELECT detail FROM records WHERE key='k1'").fetchone()[0])
    assert "inputs" not in stored  # not in the record: in the set it names


def test_the_same_set_in_two_records_is_stored_once(db):
    m = material(inputs_of(2000))
    db.records.save(Record("k1", "a", {}, m))
    chunks, size = rows(db, "input_chunks"), table_bytes(db)
    db.records.save(Record("k2", "b", {}, dict(m, definition='{"other": 1}')))
    assert rows(db, "input_sets") == 1 and rows(db, "input_chunks") == chunks
    assert table_bytes(db) - size < 500  # the second record's own detail only
    assert db.records.get("k2").detail["inputs"] == m["inputs"]


def test_one_changed_hash_stores_one_chunk_not_a_copy(db):
    base = inputs_of(5000)
    db.records.save(Record("k1", "a", {}, material(base)))
    chunks, size = rows(db, "input_chunks"), table_bytes(db)
    assert chunks > 10  # cut into chunks, not one blob
    changed = inputs_of(5000, {"src/d02/f02500.txt": "0" * 64})
    db.records.save(Record("k2", "a", {}, material(changed)))
    assert rows(db, "input_sets") == 2 and rows(db, "input_chunks") == chunks + 1
    assert table_bytes(db) - size < size / 10
    assert db.records.get("k1").detail["inputs"] == base
    assert db.records.get("k2").detail["inputs"] == changed


def test_an_added_path_touches_at_most_two_chunks():
    base = inputs_of(5000)
    before = {h for h, _ in inputsets.chunks(base)}
    after = {h for h, _ in inputsets.chunks(dict(base, **{"src/d01/f01234a.txt": "1" * 64}))}
    assert len(after - before) <= 2 and len(before - after) <= 2


def test_a_chunk_is_cut_even_without_a_boundary():
    # Paths whose crc32 never hits a boundary still give chunks of at most MAX_CHUNK.
    import zlib

    paths = [p for p in (f"p{i}" for i in range(40000))
             if zlib.crc32(p.encode()) % inputsets.CHUNK_SPREAD][:3000]
    parts = inputsets.chunks({p: "h" for p in paths})
    assert len(parts) == 3 and all(len(json.loads(data)) <= inputsets.MAX_CHUNK for _, data in parts)


def test_inputs_that_are_not_a_hash_map_stay_in_the_record(db):
    for detail in ({}, {"v": 1}, {"inputs": ["a", "b"]}, {"inputs": {"a": 1}}):
        db.records.save(Record("k", "a", {}, detail))
        assert db.records.get("k").detail == detail
    assert rows(db, "input_sets") == 0


def test_empty_inputs_and_none_hashes_round_trip(db):
    for inputs in ({}, {"a.txt": None, "b.txt": "tree-" + "0" * 64}):
        db.records.save(Record("k", "a", {}, material(inputs)))
        assert db.records.get("k").detail["inputs"] == inputs


def test_deleting_records_drops_the_sets_and_chunks_no_one_names(db):
    base = inputs_of(3000)
    db.records.save(Record("k1", "a", {}, material(base)))
    db.records.save(Record("k2", "a", {}, material(inputs_of(3000, {"src/d00/f00001.txt": "x" * 64}))))
    db.records.save(Record("k3", "b", {}, material({"other.txt": "h"})))
    shared_chunks = rows(db, "input_chunks")
    db.records.delete(["k2"])
    assert rows(db, "input_sets") == 2 and rows(db, "input_chunks") == shared_chunks - 1
    assert db.records.get("k1").detail["inputs"] == base  # its chunks, shared with k2's, stay
    db.records.delete(["k1", "k3"])
    assert rows(db, "input_sets") == 0 and rows(db, "input_chunks") == 0


def test_clear_forgets_the_sets(db):
    db.records.save(Record("k1", "a", {}, material(inputs_of(10))))
    db.clear()
    assert rows(db, "input_sets") == rows(db, "input_chunks") == rows(db, "records") == 0
    db.records.save(Record("k1", "a", {}, material(inputs_of(10))))
    db.records.clear()
    assert rows(db, "input_sets") == rows(db, "input_chunks") == 0


V3_RECORDS = """
CREATE TABLE records(
  key TEXT PRIMARY KEY, step TEXT, outputs TEXT, detail TEXT, created REAL, run_id TEXT, duration REAL);
CREATE INDEX records_step ON records(step, created);
"""


def test_upgrade_from_version_3_moves_input_hashes_into_sets(tmp_path):
    path = str(tmp_path / "state.db")
    StateDB(path).close()  # every table of today; then made to look like schema 3
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("DROP TABLE records; DROP TABLE input_sets; DROP TABLE input_chunks;" + V3_RECORDS)
    m = material(inputs_of(1500))
    for key, detail in (("k1", m), ("k2", m), ("k3", {"v": 1})):
        conn.execute("INSERT INTO records VALUES (?, 'a', '{}', ?, 1.0, 'r', 0.1)",
                     (key, json.dumps(detail, sort_keys=True)))
    conn.execute("PRAGMA user_version=3")
    conn.close()
    db = StateDB(path)
    try:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert db.records.get("k1").detail == m and db.records.get("k2").detail == m
        assert db.records.get("k3").detail == {"v": 1}
        assert rows(db, "input_sets") == 1
        details = [r[0] for r in db.conn.execute("SELECT detail FROM records")]
        assert not any("inputs" in d for d in details)
        assert db.integrity_check() == "ok"
    finally:
        db.close()
