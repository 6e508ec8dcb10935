"""store.commit.GroupCommit: records are saved only after their objects are synced."""

from __future__ import annotations

import pytest

from amelia.store import Record, Store
from amelia.store.commit import GroupCommit


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    yield s
    s.close()


def test_records_wait_for_their_objects_then_save_together(store, tmp_path, monkeypatch):
    order = []
    real_sync, real_save = store.objects.sync, store.records.save_many
    monkeypatch.setattr(store.objects, "sync", lambda ds: (order.append(("sync", sorted(ds))), real_sync(ds)))
    monkeypatch.setattr(store.records, "save_many",
                        lambda rs: (order.append(("save", [r.key for r in rs])), real_save(rs)))
    f = tmp_path / "out.txt"
    f.write_text("hello")
    digest = store.objects.put_file(str(f), durable=False)
    commit = GroupCommit(store.objects, store.records)
    commit.save(Record("k1", "a", {"out.txt": digest}, {"v": 1}))
    commit.flush()
    assert order[0] == ("sync", [digest]) and order[1] == ("save", ["k1"])
    assert store.records.get("k1").outputs == {"out.txt": digest}
    assert commit.error is None


def test_without_syncfs_a_tree_is_synced_file_by_file(store, tmp_path, monkeypatch):
    from amelia.store import objects

    monkeypatch.setattr(objects, "_SYNCFS", [None])  # as on a system without syncfs(2)
    d = tmp_path / "gen"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    tree = store.objects.put_tree(str(d), durable=False)
    store.objects.sync([tree])  # opens every member: a missing one would raise
    assert store.objects.can_restore(tree)


def test_a_failure_is_reported_and_nothing_is_recorded(store, monkeypatch):
    def broken(_digests):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.objects, "sync", broken)
    commit = GroupCommit(store.objects, store.records)
    commit.save(Record("k2", "a", {"x": "0" * 64}, {}))
    commit.flush()
    assert isinstance(commit.error, OSError)
    assert store.records.get("k2") is None


def test_flush_without_records_is_a_no_op(store):
    GroupCommit(store.objects, store.records).flush()


def test_syncfs_is_one_call_for_a_batch(store, tmp_path, monkeypatch):
    from amelia.store import objects

    calls = []
    monkeypatch.setattr(objects, "_SYNCFS", [lambda fd: calls.append(fd) or 0])
    digests = []
    for i in range(5):
        f = tmp_path / f"f{i}"
        f.write_text(str(i))
        digests.append(store.objects.put_file(str(f), durable=False))
    store.objects.sync(digests)
    assert len(calls) == 1
