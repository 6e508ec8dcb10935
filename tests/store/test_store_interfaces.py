"""The store's narrow interfaces: records by key, run history with StepRow, the memos,
the remote-cache seams (Protocols), integrity, and the schema migration from v2."""

from __future__ import annotations

import sqlite3

import pytest

from amelia.errors import StoreProblem
from amelia.store import EventRow, Record, RecordHead, StepRow, Store, UsageRow
from amelia.store import interfaces
from amelia.store.objects import ObjectStore
from amelia.store.records import Records
from amelia.store.state import SCHEMA_VERSION, StateDB


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    yield s
    s.close()


# -- the seams -----------------------------------------------------------------------

def test_local_implementations_satisfy_the_remote_seams(store):
    assert isinstance(store.objects, interfaces.ContentStore)
    assert isinstance(store.records, interfaces.RecordStore)
    assert isinstance(store.objects, ObjectStore) and isinstance(store.records, Records)


def test_seams_name_no_sqlite():
    import inspect

    src = inspect.getsource(interfaces).lower()
    assert "import sqlite3" not in src and "conn" not in src and "cursor" not in src
    for proto in (interfaces.ContentStore, interfaces.RecordStore):
        for name, member in vars(proto).items():
            if callable(member) and not name.startswith("_"):
                assert "sqlite" not in str(inspect.signature(member)).lower()


# -- records by key ------------------------------------------------------------------

def test_record_round_trip_by_key(store):
    assert store.records.get("k1") is None
    rec = Record("k1", "a", {"out.txt": "h1", "site/": "tree-" + "2" * 64}, {"v": 1, "inputs": {"x": "h"}},
                 "run1", 1.5)
    store.records.save(rec)
    got = store.records.get("k1")
    assert got._replace(created=None) == rec
    assert got.created is not None
    store.records.save(Record("k1", "a", {"out.txt": "h1"}, {"v": 1}, "run2", 0.1, created=42.0))
    assert store.records.get("k1").created == 42.0 and store.records.get("k1").run_id == "run2"
    with pytest.raises(AttributeError):
        rec.key = "other"


def test_record_heads_and_all_outputs_newest_first(store):
    for i, (key, step) in enumerate([("k1", "a"), ("k2", "b"), ("k3", "a")]):
        store.records.save(Record(key, step, {f"{step}.txt": f"h{i}"}, {}, "r", 0.0, created=float(i)))
    assert store.records.heads(["a"]) == {"k1": ("a", {"a.txt": "h0"}), "k3": ("a", {"a.txt": "h2"})}
    assert store.records.heads([]) == {}
    heads = store.records.all_outputs()
    assert [h.key for h in heads] == ["k3", "k2", "k1"]
    assert heads[0] == RecordHead("k3", "a", {"a.txt": "h2"}) == ("k3", "a", {"a.txt": "h2"})
    store.records.delete(["k3", "nope"])
    store.records.delete([])
    assert [h.key for h in store.records.all_outputs()] == ["k2", "k1"]
    store.records.clear()
    assert store.records.all_outputs() == []


def test_latest_detail_through_records_and_history(store):
    store.records.save(Record("k-old", "a", {}, {"which": "old"}, "r1", 0.0, created=1.0))
    store.records.save(Record("k-new", "a", {}, {"which": "new"}, "r2", 0.0, created=2.0))
    assert store.records.latest_detail("a") == {"which": "new"}
    store.history.start_run("r3", "p", "f", [])
    store.history.finish_run("r3", "ok", {}, [StepRow("r3", "a", "cached", key="k-old", started=50.0)])
    assert store.records.latest_detail("a") == {"which": "old"}
    assert store.records.latest_detail("zzz") is None


# -- run history -------------------------------------------------------------------------

def test_history_with_step_rows(store):
    store.history.start_run("r1", "pipe", "amelia.yaml", ["run"])
    steps = [StepRow("r1", "a", "ran", "new step", "k1", 10.0, 1.5, 0),
             StepRow("r1", "b", "failed", "", None, 11.0, 0.2, 2, "exit 2"),
             ("r1", "c", "skipped", "upstream b failed", None, 12.0, 0.0, None, None)]  # a tuple still works
    events = [EventRow("r1", 0, 10.0, "run_started", "{}"), ("r1", 1, 12.0, "run_finished", "{}")]
    store.history.finish_run("r1", "failed", {"counts": {"ran": 1}}, steps, events)
    assert store.history.steps("r1") == [StepRow(*s) if isinstance(s, tuple) else s for s in steps]
    assert [e.type for e in store.history.events("r1")] == ["run_started", "run_finished"]
    run = store.history.run("r1")
    assert run["status"] == "failed" and run["summary"] == {"counts": {"ran": 1}}
    assert run["steps"][1] == steps[1]._asdict()
    assert store.history.run_ids() == ["r1"] and [r["id"] for r in store.history.runs()] == ["r1"]
    assert store.history.run("nope") is None


def test_step_row_is_frozen_and_replaceable():
    row = StepRow("r", "a", "running", "inputs changed", started=1.0)
    assert (row.key, row.duration, row.exit_code, row.error) == (None, None, None, None)
    done = row._replace(status="ran", key="k", duration=2.0)
    assert done.status == "ran" and row.status == "running"
    assert StepRow.of(done) is done and StepRow.of(list(done.as_tuple())) == done
    with pytest.raises(AttributeError):
        row.status = "ran"


def test_finish_run_rejects_a_short_row_and_writes_nothing(store):
    store.history.start_run("r1", "p", "f", [])
    with pytest.raises(ValueError, match="StepRow has 9 fields"):
        store.history.finish_run("r1", "ok", {}, [StepRow("r1", "a", "ran"), ("too", "short")], [])
    assert store.history.run("r1")["status"] == "running" and store.history.steps("r1") == []


def test_usage_rows(store):
    store.history.start_run("r1", "p", "f", [])
    store.history.add_usage(UsageRow("r1", "a", 1, "openai", "gpt", 100, 20, 5, 0, 0.5, 0, 0.01, 1.0))
    store.history.add_usage(UsageRow("r1", "a", 2, "openai", "gpt", 10, 2, 0, 0, 0.1, 1, 0.02))
    store.history.add_usage(("r1", "b", 1, "local", "smol", 7, 3, 0, 0, 0.2, 0, None, 3.0))
    by_step = store.history.usage_by_step("r1")
    assert by_step["a"]["calls"] == 2 and by_step["a"]["input_tokens"] == 110
    assert by_step["a"]["cost"] == pytest.approx(0.03) and by_step["b"]["cost"] is None
    assert store.history.usage_totals(["r1", "r2"]) == {
        "r1": {"input_tokens": 117, "output_tokens": 25, "cost": pytest.approx(0.03)}}
    assert store.history.usage_totals([]) == {}
    with pytest.raises(ValueError):
        store.history.add_usage(("r1", "a"))


def test_state_db_finish_run_accepts_step_rows_and_tuples(store):
    db = store.state
    db.start_run("r1", "p", "f", [])
    db.finish_run("r1", "ok", {}, [StepRow("r1", "a", "cached", "", "k", 1.0, 0.0),
                                  ("r1", "b", "cached", "", "k2", 1.0, 0.0, None, None)], [])
    assert [s["step"] for s in db.run("r1")["steps"]] == ["a", "b"]


# -- memos -----------------------------------------------------------------------------------

def test_file_state_memo(store):
    assert store.memo.load() == {}
    store.memo.save({"a.txt": (1, 2, 3, "h1"), "b/c": (4, 5, 6, "h2")})
    store.memo.save({})
    store.memo.save({"a.txt": (7, 8, 9, "h3")})
    assert store.memo.load() == {"a.txt": (7, 8, 9, "h3"), "b/c": (4, 5, 6, "h2")}
    store.memo.delete(["b/c", "gone"])
    store.memo.delete([])
    assert set(store.memo.load()) == {"a.txt"}
    store.memo.clear()
    assert store.memo.load() == {}


def test_pipeline_memo(store):
    assert store.pipelines.get("d") is None
    store.pipelines.save("d", "{}")
    assert store.pipelines.get("d") == "{}" == store.state.pipeline("d")


def test_clear_cache_keeps_history(store, tmp_path):
    (tmp_path / "f").write_text("x")
    h = store.objects.put_file(str(tmp_path / "f"))
    store.records.save(Record("k", "a", {"f": h}, {}))
    store.memo.save({"f": (1, 2, 3, h)})
    store.pipelines.save("d", "{}")
    store.history.start_run("r", "p", "f", [])
    store.clear_cache()
    assert store.records.get("k") is None and store.memo.load() == {} and store.pipelines.get("d") is None
    assert not store.objects.has(h) and store.history.run("r") is not None


# -- integrity -----------------------------------------------------------------------------

def test_integrity_ok(store):
    assert store.integrity() == "ok"


def test_a_damaged_state_db_is_a_clear_error(tmp_path):
    (tmp_path / ".amelia").mkdir()
    (tmp_path / ".amelia" / "state.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreProblem, match="the store's database is damaged") as e:
        Store(str(tmp_path))
    assert e.value.exit_code == 4 and e.value.location.file.endswith(".amelia/state.db")
    assert "move" in e.value.hint and "aside" in e.value.hint


# -- migration ------------------------------------------------------------------------------

V2_SCHEMA = """
CREATE TABLE file_state(
  path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, hash TEXT) WITHOUT ROWID;
CREATE TABLE pipelines(digest TEXT PRIMARY KEY, data TEXT, created REAL);
CREATE TABLE records(
  key TEXT PRIMARY KEY, step TEXT, outputs TEXT, detail TEXT, created REAL, run_id TEXT, duration REAL);
CREATE INDEX records_step ON records(step, created);
CREATE TABLE runs(
  id TEXT PRIMARY KEY, pipeline TEXT, file TEXT, started REAL, finished REAL, status TEXT,
  argv TEXT, summary TEXT);
CREATE TABLE run_steps(
  run_id TEXT, step TEXT, status TEXT, reason TEXT, key TEXT, started REAL, duration REAL,
  exit_code INTEGER, error TEXT, PRIMARY KEY(run_id, step));
CREATE TABLE usage(
  run_id TEXT, step TEXT, seq INTEGER, provider TEXT, model TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cached_tokens INTEGER, cache_write_tokens INTEGER, latency REAL,
  retries INTEGER, cost REAL, created REAL);
CREATE INDEX usage_run ON usage(run_id, step);
CREATE TABLE events(run_id TEXT, seq INTEGER, time REAL, type TEXT, data TEXT,
  PRIMARY KEY(run_id, seq));
PRAGMA user_version=2;
"""


def make_v2_db(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V2_SCHEMA)
    conn.execute("INSERT INTO file_state VALUES ('a.txt', 1, 2, 3, 'h')")
    conn.execute("INSERT INTO pipelines VALUES ('d', '{}', 1.0)")
    conn.execute("""INSERT INTO records VALUES ('k1', 'a', '{"a.txt": "h1"}', '{"v": 1}', 1.0, 'r1', 0.5)""")
    conn.execute("""INSERT INTO runs VALUES ('r1', 'p', 'f', 1.0, 2.0, 'ok', '["run"]', '{"counts": {}}')""")
    conn.execute("INSERT INTO run_steps VALUES ('r1', 'a', 'ran', 'new step', 'k1', 1.0, 0.5, 0, NULL)")
    conn.execute("INSERT INTO usage VALUES ('r1', 'a', 1, 'openai', 'm', 10, 2, 0, 0, 0.1, 0, 0.5, 1.0)")
    conn.execute("INSERT INTO events VALUES ('r1', 0, 1.0, 'run_started', '{}')")
    conn.close()


def indexes(db) -> set:
    return {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def test_upgrade_from_version_2_keeps_the_data_and_adds_the_index(tmp_path):
    path = str(tmp_path / "state.db")
    make_v2_db(path)
    db = StateDB(path)
    try:
        assert SCHEMA_VERSION == 5
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert "run_steps_step" in indexes(db)
        assert db.memo.load() == {"a.txt": (1, 2, 3, "h")}
        assert db.pipelines.get("d") == "{}"
        assert db.records.get("k1").outputs == {"a.txt": "h1"}
        assert db.records.latest_detail("a") == {"v": 1}
        assert db.history.steps("r1") == [StepRow("r1", "a", "ran", "new step", "k1", 1.0, 0.5, 0, None)]
        assert db.history.usage_by_step("r1")["a"]["calls"] == 1
        assert [e.seq for e in db.history.events("r1")] == [0]
        assert db.integrity_check() == "ok"
    finally:
        db.close()
    again = StateDB(path)  # opening an upgraded database changes nothing
    try:
        assert again.records.get("k1") is not None and "run_steps_step" in indexes(again)
    finally:
        again.close()


def test_new_database_has_the_index(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        assert {"run_steps_step", "records_step", "usage_run"} <= indexes(db)
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


def test_latest_detail_uses_the_index_not_a_scan(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        plan = db.conn.execute(
            "EXPLAIN QUERY PLAN SELECT r.detail FROM run_steps s JOIN records r ON r.key = s.key "
            "WHERE s.step=? AND s.status IN ('ran', 'cached') ORDER BY s.started DESC LIMIT 1",
            ("a",)).fetchall()
        text = " | ".join(str(r[-1]) for r in plan)
        assert "run_steps_step" in text and "SCAN s" not in text, text
    finally:
        db.close()


def test_a_database_from_a_newer_amelia_is_left_alone(tmp_path):
    path = str(tmp_path / "state.db")
    StateDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    db = StateDB(path)
    try:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        db.close()
