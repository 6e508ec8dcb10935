"""amelia.store: content-addressed objects, state.db, the project lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from amelia.errors import LockHeld
from amelia.store import STORE_DIR, Store, exists
from amelia.store import objects as objmod
from amelia.store.lock import ProjectLock
from amelia.store.objects import ObjectStore, atomic_copy, hash_bytes, hash_file, tree_digest
from amelia.store.state import StateDB


def write(path, data: bytes | str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return str(path)


def files_under(d) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(d):
        for name in files:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, d)] = open(full, "rb").read()
    return out


@pytest.fixture
def objects(tmp_path) -> ObjectStore:
    return ObjectStore(str(tmp_path / ".amelia" / "objects"))


def tmp_leftovers(objects: ObjectStore) -> list:
    d = os.path.join(objects.dir, "tmp")
    return os.listdir(d) if os.path.isdir(d) else []


# -- objects --------------------------------------------------------------------------

def test_put_file_and_restore_round_trip(tmp_path, objects):
    src = write(tmp_path / "a.bin", b"\x00hello\xff" * 1000)
    digest = objects.put_file(src)
    assert digest == hash_file(src) == hash_bytes(b"\x00hello\xff" * 1000)
    assert objects.has(digest) and objects.can_restore(digest)
    assert objects.path(digest) == os.path.join(objects.dir, digest[:2], digest[2:])
    dst = tmp_path / "restored" / "deep" / "a.bin"
    objects.restore(digest, str(dst), str(tmp_path))
    assert dst.read_bytes() == b"\x00hello\xff" * 1000
    assert tmp_leftovers(objects) == []


def test_put_file_is_idempotent_and_deduplicates(tmp_path, objects):
    a = write(tmp_path / "a", "same")
    b = write(tmp_path / "b", "same")
    assert objects.put_file(a) == objects.put_file(b) == objects.put_file(a, hash_bytes(b"same"))
    assert [d for d, _ in objects.iter_objects()] == [hash_bytes(b"same")]
    assert tmp_leftovers(objects) == []


def test_put_file_hashes_what_it_copied_not_the_hint(tmp_path, objects):
    src = write(tmp_path / "a", "actual")
    assert objects.put_file(src, "0" * 64) == hash_bytes(b"actual")


def test_put_bytes_round_trip(tmp_path, objects):
    digest = objects.put_bytes(b"manifest")
    assert digest == hash_bytes(b"manifest")
    assert open(objects.path(digest), "rb").read() == b"manifest"
    assert objects.put_bytes(b"manifest") == digest
    assert tmp_leftovers(objects) == []


def test_restore_overwrites_a_changed_file(tmp_path, objects):
    digest = objects.put_file(write(tmp_path / "a", "good"))
    dst = write(tmp_path / "out", "hand edited")
    objects.restore(digest, dst, str(tmp_path))
    assert open(dst).read() == "good"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".amelia-tmp-")]


def test_restored_file_is_readable_by_others(tmp_path, objects):
    digest = objects.put_file(write(tmp_path / "a", "x"))
    dst = tmp_path / "out.txt"
    objects.restore(digest, str(dst), str(tmp_path))
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o666 & ~objmod._umask()


@pytest.fixture
def outdir(tmp_path):
    d = tmp_path / "proj" / "site"
    write(d / "index.html", "<h1>")
    write(d / "css" / "main.css", "body{}")
    write(d / "img" / "logo.png", b"\x89PNG")
    return d


def test_put_tree_and_restore_round_trip(tmp_path, objects, outdir):
    digest = objects.put_tree(str(outdir))
    assert digest.startswith("tree-")
    manifest = objects.read_tree(digest)
    assert manifest == {"index.html": hash_bytes(b"<h1>"), "css/main.css": hash_bytes(b"body{}"),
                        "img/logo.png": hash_bytes(b"\x89PNG")}
    assert digest == tree_digest(manifest)
    assert objects.can_restore(digest)
    dst = tmp_path / "elsewhere" / "site"
    objects.restore(digest, str(dst), str(tmp_path))
    assert files_under(dst) == files_under(outdir)


def test_restore_tree_removes_extra_files_and_fixes_changed(tmp_path, objects, outdir):
    digest = objects.put_tree(str(outdir))
    before = files_under(outdir)
    write(outdir / "stale.html", "old")
    write(outdir / "css" / "old.css", "old")
    write(outdir / "index.html", "<h1>edited")
    os.remove(outdir / "img" / "logo.png")
    objects.restore(digest, str(outdir), str(tmp_path))
    assert files_under(outdir) == before


def test_restore_tree_leaves_git_dirs_alone(tmp_path, objects, outdir):
    write(outdir / ".git" / "HEAD", "ref")
    digest = objects.put_tree(str(outdir))
    assert ".git/HEAD" not in objects.read_tree(digest)
    objects.restore(digest, str(outdir), str(tmp_path))
    assert (outdir / ".git" / "HEAD").read_text() == "ref"


def test_empty_tree_restores_the_directory(tmp_path, objects):
    (tmp_path / "empty").mkdir()
    digest = objects.put_tree(str(tmp_path / "empty"))
    assert digest == tree_digest({})
    objects.restore(digest, str(tmp_path / "again"), str(tmp_path))
    assert (tmp_path / "again").is_dir()


def test_put_tree_with_known_hashes_skips_stored_files(tmp_path, objects, outdir, monkeypatch):
    first = objects.put_tree(str(outdir))
    hashes = objects.read_tree(first)
    opened = []
    real_open = open

    def spy(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    assert objects.put_tree(str(outdir), hashes) == first
    assert not [p for p in opened if p.startswith(str(outdir))]


def test_can_restore_is_false_when_a_member_is_gone(tmp_path, objects, outdir):
    digest = objects.put_tree(str(outdir))
    objects.remove(hash_bytes(b"body{}"))
    assert objects.has(digest) and not objects.can_restore(digest)
    assert not objects.can_restore("f" * 64)
    assert not objects.can_restore("tree-" + "f" * 64)


def test_put_file_failure_leaves_nothing(tmp_path, objects, monkeypatch):
    src = write(tmp_path / "a", "payload")
    digest = hash_bytes(b"payload")

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(objmod.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        objects.put_file(src)
    assert not objects.has(digest)
    assert tmp_leftovers(objects) == []
    assert list(objects.iter_objects()) == []
    monkeypatch.undo()
    assert objects.put_file(src) == digest


def test_put_file_interrupted_mid_copy_leaves_nothing(tmp_path, objects, monkeypatch):
    src = write(tmp_path / "big", b"x" * (objmod.CHUNK * 2 + 5))
    real_fsync = os.fsync

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(objmod.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        objects.put_file(src)
    monkeypatch.setattr(objmod.os, "fsync", real_fsync)
    assert list(objects.iter_objects()) == [] and tmp_leftovers(objects) == []


def test_put_bytes_failure_leaves_nothing(tmp_path, objects, monkeypatch):
    monkeypatch.setattr(objmod.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        objects.put_bytes(b"data")
    assert not objects.has(hash_bytes(b"data"))
    assert tmp_leftovers(objects) == []
    assert list(objects.iter_objects()) == []


def test_atomic_copy_failure_keeps_the_old_file(tmp_path, monkeypatch):
    src = write(tmp_path / "new", "new content")
    dst = write(tmp_path / "out" / "f.txt", "old content")
    monkeypatch.setattr(objmod.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        atomic_copy(src, dst)
    assert open(dst).read() == "old content"
    assert os.listdir(tmp_path / "out") == ["f.txt"]


def test_verify_detects_a_flipped_byte(tmp_path, objects):
    good = objects.put_file(write(tmp_path / "good", "fine"))
    bad = objects.put_file(write(tmp_path / "bad", "will rot"))
    write(tmp_path / "dir" / "f", "in a tree")
    tree = objects.put_tree(str(tmp_path / "dir"))
    assert objects.verify() == []
    p = objects.path(bad)
    os.chmod(p, 0o644)
    data = bytearray(open(p, "rb").read())
    data[3] ^= 0x01
    open(p, "wb").write(bytes(data))
    assert objects.verify() == [bad]
    assert objects.has(good) and objects.has(tree)


def test_iter_objects_ignores_tmp_and_strays(tmp_path, objects):
    d = objects.put_bytes(b"one")
    write(os.path.join(objects.dir, "tmp", "half-written"), "x")
    write(os.path.join(objects.dir, "README"), "x")
    assert [x for x, _ in objects.iter_objects()] == [d]
    assert list(ObjectStore(str(tmp_path / "nope")).iter_objects()) == []


def test_tree_object_is_named_without_prefix_on_disk(tmp_path, objects, outdir):
    digest = objects.put_tree(str(outdir))
    bare = digest[len("tree-"):]
    assert objects.path(digest) == objects.path(bare)
    assert bare in [x for x, _ in objects.iter_objects()]
    assert json.loads(open(objects.path(digest), "rb").read()) == objects.read_tree(digest)


# -- Store ----------------------------------------------------------------------------

def test_store_creates_its_directory_with_a_gitignore(tmp_path):
    assert not exists(str(tmp_path))
    s = Store(str(tmp_path))
    try:
        assert exists(str(tmp_path))
        assert (tmp_path / STORE_DIR / ".gitignore").read_text().splitlines()[-1] == "*"
        log = s.logs_dir("run-1")
        assert os.path.isdir(log) and log.startswith(str(tmp_path / STORE_DIR))
    finally:
        s.close()


# -- StateDB --------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    d = StateDB(str(tmp_path / "state.db"))
    yield d
    d.close()


def test_file_states_round_trip(tmp_path, db):
    assert db.file_states() == {}
    db.save_file_states({"a.txt": (1, 2, 3, "h1"), "b/c": (4, 5, 6, "h2")})
    db.save_file_states({})
    db.save_file_states({"a.txt": (7, 8, 9, "h3")})
    db.close()
    again = StateDB(db.path)
    try:
        assert again.file_states() == {"a.txt": (7, 8, 9, "h3"), "b/c": (4, 5, 6, "h2")}
    finally:
        again.close()


def test_db_is_wal(tmp_path, db):
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pipeline_cache_keeps_the_20_newest(db, monkeypatch):
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    for i in range(25):
        db.save_pipeline(f"d{i}", f"data{i}")
    assert db.pipeline("d24") == "data24"
    assert db.pipeline("d5") == "data5"
    assert db.pipeline("d4") is None and db.pipeline("d0") is None
    assert db.conn.execute("SELECT count(*) FROM pipelines").fetchone()[0] == 20
    db.save_pipeline("d5", "again")  # re-saving refreshes it
    assert db.pipeline("d5") == "again"
    assert db.pipeline("nope") is None


def test_records(db):
    assert db.record_heads(["a"]) == {}
    db.save_record("k1", "a", {"a.txt": "h1"}, {"v": 1}, "run1", 0.5)
    db.save_record("k2", "a", {"a.txt": "h2"}, {"v": 2}, "run2", 0.5)
    db.save_record("k3", "b", {}, {"v": 3}, "run2", 0.5)
    assert db.record_heads(["a"]) == {"k1": ("a", {"a.txt": "h1"}), "k2": ("a", {"a.txt": "h2"})}
    assert set(db.record_heads(["a", "b", "zzz"])) == {"k1", "k2", "k3"}
    assert db.record_heads([]) == {}
    assert sorted(db.all_record_outputs()) == [("k1", "a", {"a.txt": "h1"}), ("k2", "a", {"a.txt": "h2"}),
                                               ("k3", "b", {})]
    db.delete_records(["k1", "k3"])
    assert set(db.record_heads(["a", "b"])) == {"k2"}


def test_record_heads_many_steps(db):
    for i in range(1200):
        db.save_record(f"k{i}", f"s{i}", {}, {}, "r", 0.0)
    assert len(db.record_heads([f"s{i}" for i in range(1200)])) == 1200


def test_runs_and_run_steps(db):
    db.start_run("r1", "pipe", "amelia.yaml", ["run", "-j", "2"])
    run = db.run("r1")
    assert run["status"] == "running" and run["argv"] == ["run", "-j", "2"] and run["steps"] == []
    steps = [("r1", "a", "ran", "new step", "k1", 10.0, 1.5, 0, None),
             ("r1", "b", "failed", "", None, 11.0, 0.2, 2, "exit 2")]
    events = [("r1", 0, 10.0, "run_started", "{}"), ("r1", 1, 12.0, "run_finished", "{}")]
    db.finish_run("r1", "failed", {"counts": {"ran": 1}}, steps, events)
    run = db.run("r1")
    assert run["status"] == "failed" and run["finished"] and run["summary"] == {"counts": {"ran": 1}}
    assert [(s["step"], s["status"], s["exit_code"]) for s in run["steps"]] == [("a", "ran", 0), ("b", "failed", 2)]
    assert db.conn.execute("SELECT count(*) FROM events WHERE run_id='r1'").fetchone()[0] == 2
    assert db.run("nope") is None


def test_runs_listing_newest_first(db, monkeypatch):
    clock = iter(range(100))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    for i in range(5):
        db.start_run(f"r{i}", "p", "f", [])
    assert [r["id"] for r in db.runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r["id"] for r in db.runs(limit=2)] == ["r4", "r3"]
    assert db.run_ids() == ["r4", "r3", "r2", "r1", "r0"]


def test_finish_run_is_one_transaction(db):
    db.start_run("r1", "p", "f", [])
    bad_steps = [("r1", "a", "ran", "", "k", 1.0, 1.0, 0, None), ("too", "short")]
    with pytest.raises(Exception):
        db.finish_run("r1", "ok", {}, bad_steps, [])
    assert db.run("r1")["status"] == "running" and db.run("r1")["steps"] == []


def test_latest_detail_prefers_the_last_runs_key(db, monkeypatch):
    clock = iter(range(100, 200))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    assert db.latest_detail("a") is None
    db.save_record("k-old", "a", {}, {"which": "old"}, "r1", 0.0)
    # no run history: the newest record
    db.save_record("k-new", "a", {}, {"which": "new"}, "r2", 0.0)
    assert db.latest_detail("a") == {"which": "new"}
    # the user went back to the old inputs: the last run used k-old (a cache hit)
    db.start_run("r3", "p", "f", [])
    db.finish_run("r3", "ok", {}, [("r3", "a", "cached", "", "k-old", 50.0, 0.0, None, None)], [])
    assert db.latest_detail("a") == {"which": "old"}
    # a failed run does not count
    db.start_run("r4", "p", "f", [])
    db.finish_run("r4", "failed", {}, [("r4", "a", "failed", "", "k-new", 60.0, 0.0, 1, "x")], [])
    assert db.latest_detail("a") == {"which": "old"}
    db.start_run("r5", "p", "f", [])
    db.finish_run("r5", "ok", {}, [("r5", "a", "ran", "", "k-new", 70.0, 0.0, 0, None)], [])
    assert db.latest_detail("a") == {"which": "new"}


def test_clear_keeps_run_history(db):
    db.save_file_states({"a": (1, 2, 3, "h")})
    db.save_pipeline("d", "x")
    db.save_record("k", "a", {}, {}, "r", 0.0)
    db.start_run("r", "p", "f", [])
    db.clear()
    assert db.file_states() == {} and db.pipeline("d") is None and db.record_heads(["a"]) == {}
    assert db.run("r") is not None


def test_two_connections_see_each_other(tmp_path):
    a = StateDB(str(tmp_path / "s.db"))
    b = StateDB(str(tmp_path / "s.db"))
    try:
        a.save_record("k", "s", {"o": "h"}, {}, "r", 0.0)
        assert b.record_heads(["s"]) == {"k": ("s", {"o": "h"})}
    finally:
        a.close()
        b.close()


# -- ProjectLock ------------------------------------------------------------------------

HOLDER = textwrap.dedent("""\
    import sys, time
    from amelia.store.lock import ProjectLock
    lock = ProjectLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
""")


def hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_acquire_release_and_reacquire(tmp_path):
    path = tmp_path / "lock"
    lock = ProjectLock(str(path))
    lock.acquire()
    assert path.read_text() == str(os.getpid())
    lock.release()
    assert path.read_text() == ""
    lock.release()  # twice is harmless
    with ProjectLock(str(path)) as again:
        again.acquire()
    assert again.fd is None


def test_second_process_fails_at_once_naming_the_pid(tmp_path):
    path = tmp_path / "lock"
    holder = hold_lock(path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(LockHeld) as e:
            ProjectLock(str(path)).acquire()
        assert time.monotonic() - start < 1.0
        assert f"pid {holder.pid}" in e.value.message
        assert "--wait" in e.value.hint
    finally:
        holder.kill()
        holder.wait()


def test_same_process_second_lock_object_is_refused(tmp_path):
    path = str(tmp_path / "lock")
    first = ProjectLock(path)
    first.acquire()
    try:
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            ProjectLock(path).acquire()
    finally:
        first.release()


def test_wait_with_timeout_gives_up(tmp_path):
    path = tmp_path / "lock"
    holder = hold_lock(path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(LockHeld):
            ProjectLock(str(path)).acquire(wait=True, timeout=0.3)
        assert 0.25 <= time.monotonic() - start < 3.0
    finally:
        holder.kill()
        holder.wait()


def test_wait_gets_the_lock_when_the_holder_finishes(tmp_path):
    path = tmp_path / "lock"
    holder = hold_lock(path, 0.3)
    try:
        lock = ProjectLock(str(path))
        lock.acquire(wait=True, timeout=10)
        assert path.read_text() == str(os.getpid())
        lock.release()
    finally:
        holder.wait()


def test_lock_released_when_holder_is_killed(tmp_path):
    path = tmp_path / "lock"
    holder = hold_lock(path, 30)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = ProjectLock(str(path))
    lock.acquire()  # at once: the OS dropped the dead holder's flock
    lock.release()


def test_lock_is_not_inherited_by_step_processes(tmp_path):
    """A step's background child must not keep the project locked after amelia exits."""
    path = str(tmp_path / "lock")
    lock = ProjectLock(path)
    lock.acquire()
    try:
        assert not os.get_inheritable(lock.fd)
    finally:
        lock.release()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_failed_acquire_does_not_leak_its_fd(tmp_path, monkeypatch):
    path = str(tmp_path / "lock")
    first = ProjectLock(path)
    first.acquire()
    try:
        before = open_fds()
        for _ in range(5):
            with pytest.raises(LockHeld):
                ProjectLock(path).acquire()
        assert open_fds() == before

        def interrupted(_seconds):
            raise KeyboardInterrupt

        import amelia.store.lock as lockmod

        monkeypatch.setattr(lockmod.time, "sleep", interrupted)
        with pytest.raises(KeyboardInterrupt):
            ProjectLock(path).acquire(wait=True)
        assert open_fds() == before
    finally:
        first.release()


def test_delete_file_states(db):
    db.save_file_states({"a": (1, 2, 3, "h"), "b": (1, 2, 3, "h")})
    db.delete_file_states(["a", "not-there"])
    db.delete_file_states([])
    assert set(db.file_states()) == {"b"}


def test_an_atomic_write_has_the_permissions_open_would_give(tmp_path):
    """mkstemp makes 0600 files: an agent's output or a report is the user's file like any other."""
    from amelia import atomic

    atomic.write_text(str(tmp_path / "a.md"), "x")
    with open(tmp_path / "b.md", "w") as f:  # what a plain open() gives under this umask
        f.write("x")
    assert (tmp_path / "a.md").stat().st_mode & 0o777 == (tmp_path / "b.md").stat().st_mode & 0o777
