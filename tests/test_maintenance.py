"""amelia.maintenance: `cache verify | gc | clear` on a real store in a temp dir."""

from __future__ import annotations

import json
import os
import time

import pytest

from amelia import maintenance
from amelia.spec import Pipeline, Step
from amelia.store import Record, Store
from amelia.store.objects import hash_bytes


def pipeline_of(*ids) -> Pipeline:
    steps = tuple(Step(id=i, kind="run", definition="{}") for i in ids)
    return Pipeline(name="t", file="amelia.yaml", root="/x", digest="d", params={}, env_names=(), steps=steps)


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    yield s
    s.close()


def put(store, tmp_path, text: str) -> str:
    p = tmp_path / "src" / hash_bytes(text.encode())[:12]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return store.objects.put_file(str(p))


def put_tree(store, tmp_path, name: str, files: dict) -> str:
    d = tmp_path / "trees" / name
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return store.objects.put_tree(str(d))


def corrupt(store, digest: str) -> None:
    p = store.objects.path(digest)
    data = bytearray(open(p, "rb").read())
    data[0] ^= 0xFF
    os.chmod(p, 0o644)
    open(p, "wb").write(bytes(data))


def objects_in(store) -> set:
    return {d for d, _ in store.objects.iter_objects()}


# -- verify ---------------------------------------------------------------------------

def test_verify_clean_store(store, tmp_path):
    h = put(store, tmp_path, "ok")
    store.state.save_record("k", "a", {"o": h}, {}, "r", 0.0)
    r = maintenance.verify(store)
    assert r.counts == {"objects checked": 1, "corrupt (removed)": 0, "missing": 0}
    assert r.bad == ()
    assert r.render(False) == "cache verify: 1 objects checked, 0 corrupt (removed), 0 missing\n"


def test_verify_reports_and_removes_corrupt_objects(store, tmp_path):
    good = put(store, tmp_path, "good")
    bad = put(store, tmp_path, "bad")
    store.state.save_record("k1", "a", {"o": good}, {}, "r", 0.0)
    store.state.save_record("k2", "b", {"o": bad}, {}, "r", 0.0)
    corrupt(store, bad)
    r = maintenance.verify(store)
    assert r.bad == (bad,)
    assert r.counts["corrupt (removed)"] == 1
    assert r.counts["missing"] == 1  # the record that pointed at it can no longer be restored
    assert not store.objects.has(bad) and store.objects.has(good)
    assert f"  corrupt: {bad}" in r.render(False)
    assert json.loads(r.render(True)) == {"counts": r.counts, "bad": [bad]}
    again = maintenance.verify(store)
    assert again.bad == () and again.counts["missing"] == 1


def test_verify_corrupt_tree_member(store, tmp_path):
    tree = put_tree(store, tmp_path, "t", {"a.txt": "A", "b/c.txt": "C"})
    store.state.save_record("k", "a", {"out/": tree}, {}, "r", 0.0)
    member = hash_bytes(b"C")
    corrupt(store, member)
    r = maintenance.verify(store)
    assert r.bad == (member,)
    assert not store.objects.can_restore(tree)
    assert r.counts["missing"] == 1


def test_verify_counts_records_whose_objects_are_gone(store, tmp_path):
    store.state.save_record("k", "a", {"x": "0" * 64, "y": "tree-" + "1" * 64}, {}, "r", 0.0)
    assert maintenance.verify(store).counts["missing"] == 2


# -- gc -------------------------------------------------------------------------------

def test_gc_keeps_the_newest_records_per_step(store, tmp_path, monkeypatch):
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    hashes = {}
    for i in range(4):
        hashes[("a", i)] = put(store, tmp_path, f"a{i}")
        store.state.save_record(f"a{i}", "a", {"a.txt": hashes[("a", i)]}, {}, "r", 0.0)
        hashes[("b", i)] = put(store, tmp_path, f"b{i}")
        store.state.save_record(f"b{i}", "b", {"b.txt": hashes[("b", i)]}, {}, "r", 0.0)
    orphan = put(store, tmp_path, "nobody points here")
    r = maintenance.gc(store, pipeline_of("a", "b"), keep=2)
    assert r.counts == {"records dropped": 4, "objects removed": 5, "log dirs removed": 0,
                        "file states dropped": 0, "temp files removed": 0}
    assert set(store.state.record_heads(["a", "b"])) == {"a2", "a3", "b2", "b3"}
    assert objects_in(store) == {hashes[(s, i)] for s in "ab" for i in (2, 3)}
    assert orphan not in objects_in(store)


def test_gc_drops_records_of_steps_no_longer_in_the_pipeline(store, tmp_path):
    h_a = put(store, tmp_path, "a")
    h_gone = put(store, tmp_path, "gone")
    store.state.save_record("ka", "a", {"a.txt": h_a}, {}, "r", 0.0)
    store.state.save_record("kg", "removed-step", {"g.txt": h_gone}, {}, "r", 0.0)
    r = maintenance.gc(store, pipeline_of("a"), keep=5)
    assert r.counts["records dropped"] == 0  # another pipeline file may own it
    assert objects_in(store) == {h_a, h_gone}
    r = maintenance.gc(store, pipeline_of("a"), keep=5, prune_other_steps=True)
    assert r.counts["records dropped"] == 1
    assert objects_in(store) == {h_a}


def test_gc_keeps_trees_and_their_members(store, tmp_path):
    tree = put_tree(store, tmp_path, "site", {"index.html": "i", "css/x.css": "x"})
    old_tree = put_tree(store, tmp_path, "old", {"index.html": "i", "old.css": "o"})
    store.state.save_record("k", "a", {"site/": tree}, {}, "r", 0.0)
    maintenance.gc(store, pipeline_of("a"), keep=1)
    bare = tree[len("tree-"):]
    assert objects_in(store) == {bare, hash_bytes(b"i"), hash_bytes(b"x")}
    assert store.objects.can_restore(tree)
    assert not store.objects.has(old_tree)


def test_gc_shared_object_survives_while_one_record_uses_it(store, tmp_path):
    shared = put(store, tmp_path, "same bytes")
    store.state.save_record("k1", "a", {"a.txt": shared}, {}, "r", 0.0)
    store.state.save_record("k2", "old", {"b.txt": shared}, {}, "r", 0.0)
    maintenance.gc(store, pipeline_of("a"), keep=1)
    assert store.objects.has(shared)


def test_gc_trims_old_log_dirs(store):
    for i in range(maintenance.KEEP_LOG_RUNS + 3):
        store.logs_dir(f"2024{i:04d}")
    r = maintenance.gc(store, pipeline_of(), keep=1)
    assert r.counts["log dirs removed"] == 3
    left = sorted(os.listdir(os.path.join(store.dir, "logs")))
    assert len(left) == maintenance.KEEP_LOG_RUNS and left[0] == "20240003"


def test_gc_leaves_temp_files_alone(store, tmp_path):
    tmp = os.path.join(store.objects.dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    open(os.path.join(tmp, "in-flight"), "w").close()
    maintenance.gc(store, pipeline_of(), keep=1)
    assert os.listdir(tmp) == ["in-flight"]


# -- clear ----------------------------------------------------------------------------

def test_clear(store, tmp_path):
    h = put(store, tmp_path, "x")
    store.state.save_record("k", "a", {"o": h}, {}, "r", 0.0)
    store.state.save_file_states({"f": (1, 2, 3, "h")})
    store.state.save_pipeline("d", "{}")
    store.state.start_run("r1", "p", "f", [])
    maintenance.clear(store)
    assert list(store.objects.iter_objects()) == []
    assert store.state.record_heads(["a"]) == {}
    assert store.state.file_states() == {} and store.state.pipeline("d") is None
    assert store.state.run("r1") is not None  # history stays
    assert store.objects.put_file(str(tmp_path / "src" / hash_bytes(b"x")[:12])) == h  # still usable
    maintenance.clear(store)
    maintenance.clear(store)  # on an empty store too


def test_gc_forgets_file_states_of_deleted_files(store, tmp_path):
    (tmp_path / "kept.txt").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kept.txt").write_text("x")
    store.state.save_file_states({"kept.txt": (1, 2, 3, "h"), "d/kept.txt": (1, 2, 3, "h"),
                                  "deleted.txt": (1, 2, 3, "h"), "gone/dir/f": (1, 2, 3, "h")})
    r = maintenance.gc(store, pipeline_of(), keep=1)
    assert r.counts["file states dropped"] == 2
    assert set(store.state.file_states()) == {"kept.txt", "d/kept.txt"}


# -- through the store's interfaces only ---------------------------------------------------

class InterfacesOnly:
    """The store without its SQLite database: maintenance must not need `state`."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        if name == "state":
            raise AssertionError("maintenance reached into store.state")
        return getattr(self._store, name)


def test_gc_verify_clear_go_through_the_interfaces(store, tmp_path):
    old = put(store, tmp_path, "old")
    new = put(store, tmp_path, "new")
    store.records.save(Record("k-old", "a", {"a.txt": old}, {}, created=1.0))
    store.records.save(Record("k-new", "a", {"a.txt": new}, {}, created=2.0))
    store.memo.save({"gone.txt": (1, 2, 3, "h")})
    s = InterfacesOnly(store)
    r = maintenance.gc(s, pipeline_of("a"), keep=1)
    assert r.counts == {"records dropped": 1, "objects removed": 1, "log dirs removed": 0,
                        "file states dropped": 1, "temp files removed": 0}
    assert [h.key for h in store.records.all_outputs()] == ["k-new"] and objects_in(store) == {new}
    assert store.memo.load() == {}
    r = maintenance.verify(s)
    assert r.counts == {"objects checked": 1, "corrupt (removed)": 0, "missing": 0}
    maintenance.clear(s)
    assert store.records.all_outputs() == [] and objects_in(store) == set()


# -- doctor's store check ----------------------------------------------------------------------

def test_doctor_store_check_through_the_interface(tmp_path, monkeypatch):
    from amelia import doctor
    from amelia.store import Store as StoreCls

    assert [c.status for c in doctor.store(str(tmp_path))] == ["ok"]  # no store yet
    s = StoreCls(str(tmp_path))
    (tmp_path / "f").write_text("x")
    s.objects.put_file(str(tmp_path / "f"))
    s.close()
    checks = {c.name: c for c in doctor.store(str(tmp_path))}
    assert checks["state.db"].status == "ok" and checks["state.db"].detail == "ok"
    assert checks["objects"].status == "ok" and checks["objects"].detail == "1 verified"
    monkeypatch.setattr(StoreCls, "integrity", lambda self: "row 3 missing from index records_step")
    checks = {c.name: c for c in doctor.store(str(tmp_path))}
    assert checks["state.db"].status == "fail" and "row 3 missing" in checks["state.db"].detail


def test_doctor_reports_a_damaged_state_db(tmp_path):
    from amelia import doctor

    (tmp_path / ".amelia").mkdir()
    (tmp_path / ".amelia" / "state.db").write_bytes(b"garbage, not a database" * 200)
    [check] = doctor.store(str(tmp_path))
    assert check.name == "state.db" and check.status == "fail" and "damaged" in check.detail


# -- gc: --keep and stale temp files ------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, -1])
def test_gc_refuses_to_keep_nothing(store, tmp_path, keep):
    from amelia.errors import UsageError

    h = put(store, tmp_path, "x")
    store.records.save(Record("k", "a", {"o": h}, {}))
    with pytest.raises(UsageError, match="--keep must be at least 1"):
        maintenance.gc(store, pipeline_of("a"), keep=keep)
    assert [r.key for r in store.records.all_outputs()] == ["k"] and objects_in(store) == {h}


def test_gc_removes_stale_temp_files_and_keeps_fresh_ones(store, tmp_path):
    tmp = os.path.join(store.objects.dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    stale, fresh = os.path.join(tmp, "tmpdead"), os.path.join(tmp, "tmplive")
    for p in (stale, fresh):
        with open(p, "wb") as f:
            f.write(b"half an object")
    old = time.time() - maintenance.STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    r = maintenance.gc(store, pipeline_of("a"), keep=1)
    assert r.counts["temp files removed"] == 1
    assert not os.path.exists(stale) and os.path.exists(fresh)  # a writer may still be filling it
    assert objects_in(store) == set()  # temp files never counted as objects


def test_remove_stale_temps_without_a_tmp_dir(tmp_path):
    assert maintenance.remove_stale_temps(str(tmp_path / "nope")) == 0
