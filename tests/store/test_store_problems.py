"""A damaged, read-only or full store is a StoreProblem (exit 4, the file, a hint), never a traceback.

Full disks are simulated honestly: SQLite's own `PRAGMA max_page_count` (the database
cannot grow: SQLITE_FULL, as on ENOSPC), and RLIMIT_FSIZE in a subprocess with SIGXFSZ
ignored (every write past the limit fails with EFBIG). Read-only is chmod; as root,
where chmod does not bite, the commands run as `nobody`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from amelia.errors import StoreProblem
from amelia.store import Record
from amelia.store.state import StateDB
from conftest import assert_golden

GOLDEN = Path(__file__).resolve().parent / "golden"

PIPE = """\
amelia: 1
name: s
steps:
  a:
    run: mkdir -p build && cat in.txt > build/a.txt
    inputs: [in.txt]
    output: build/a.txt
"""


@pytest.fixture
def db(tmp_path):
    d = StateDB(str(tmp_path / "state.db"))
    yield d
    d.close()


def fill_up(db) -> None:
    """The database may not grow past the pages it has: the next page needed is SQLITE_FULL."""
    n = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count={n}")


def many_events(run_id: str, n: int = 300) -> list:
    return [(run_id, i, 0.0, "step_output", "x" * 1000) for i in range(n)]


# -- a full disk ----------------------------------------------------------------------------

def test_a_full_disk_is_reported_not_hidden_by_a_failed_rollback(db):
    db.history.start_run("r1", "p", "f", [])
    fill_up(db)
    with pytest.raises(StoreProblem) as e:
        db.history.finish_run("r1", "ok", {}, [], many_events("r1"))
    assert "disk is full" in e.value.message and "database or disk is full" in e.value.message
    assert "rollback" not in e.value.message and e.value.exit_code == 4
    assert e.value.location.file.endswith("state.db") and "free disk space" in e.value.hint
    assert isinstance(e.value.__cause__, sqlite3.OperationalError)
    # The run is not left `running`: the small write that says it failed got through.
    assert db.history.run("r1")["status"] == "failed"
    assert db.history.events("r1") == []  # all of the big transaction or none of it


def test_a_record_that_does_not_fit_leaves_no_half(db):
    fill_up(db)
    inputs = {f"f{i}.txt": "%064d" % i for i in range(5000)}
    with pytest.raises(StoreProblem, match="disk is full"):
        db.records.save(Record("k", "a", {}, {"inputs": inputs}))
    db.conn.execute("PRAGMA max_page_count=1073741823")
    assert db.records.get("k") is None
    assert db.conn.execute("SELECT COUNT(*) FROM input_chunks").fetchone()[0] == 0
    db.records.save(Record("k", "a", {}, {"inputs": inputs}))  # and the store still works
    assert db.records.get("k").detail["inputs"] == inputs


def test_a_run_whose_end_cannot_be_written_is_marked_died_by_the_next(db):
    db.history.start_run("r1", "p", "f", [])
    db.conn.execute("PRAGMA query_only=1")  # nothing can be written, not even `failed`
    with pytest.raises(StoreProblem):
        db.history.finish_run("r1", "ok", {}, [])
    assert db.history.run("r1")["status"] == "running"
    db.conn.execute("PRAGMA query_only=0")
    db.history.start_run("r2", "p", "f", [])  # under the project lock: r1's process is gone
    assert db.history.run("r1")["status"] == "died"


FILL_SCRIPT = textwrap.dedent("""\
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    from amelia.errors import StoreProblem
    from amelia.store.state import StateDB
    db = StateDB(sys.argv[1])
    db.history.start_run("r1", "p", "f", [])
    wal = sys.argv[1] + "-wal"
    size = __import__("os").path.getsize(wal)
    # Room for two more WAL frames: the events do not fit, marking the run failed does.
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2 * (4096 + 24), resource.RLIM_INFINITY))
    try:
        db.history.finish_run("r1", "ok", {}, [], [("r1", i, 0.0, "t", "x" * 1000) for i in range(300)])
    except StoreProblem as e:
        print(type(e.__cause__).__name__, "|", e.render())
    print("status:", db.history.run("r1")["status"])
    """)


def test_a_file_size_limit_mid_transaction(tmp_path):
    r = subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(tmp_path / "state.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "rollback" not in r.stdout
    assert r.stdout.startswith("OperationalError | ")
    assert "error: the store's database could not be written (disk I/O error)" in r.stdout
    assert "ulimit -f" in r.stdout
    assert r.stdout.rstrip().endswith("status: failed")


def limited(limit: int):
    def pre():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_run_on_a_full_disk_exits_4_and_the_next_run_recovers(project):
    project.pipeline(PIPE)
    project.write("in.txt", "1\n")
    project.run("run", check=0)
    project.write("in.txt", "2\n")
    r = subprocess.run([sys.executable, "-m", "amelia", "run"], cwd=project.root, capture_output=True,
                       text=True, timeout=120, preexec_fn=limited(4096))
    assert r.returncode == 4, r.stdout + r.stderr
    assert r.stderr.startswith(".amelia/state.db: error: the store's database could not be written")
    assert "Traceback" not in r.stderr and "rollback" not in r.stderr
    project.run("run", check=0)
    assert project.read("build/a.txt") == "2\n"
    statuses = [row["status"] for row in json.loads(project.run("runs", "--json", check=0).stdout)]
    assert "running" not in statuses and statuses[0] == "ok"


# -- a damaged state.db ---------------------------------------------------------------------

def damage_page(path: Path, table: str) -> None:
    """Overwrite the root page of `table` with junk (the file stays a SQLite file)."""
    conn = sqlite3.connect(path)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * size)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project after one run, built once for the module (each test gets a copy)."""
    root = tmp_path_factory.mktemp("built") / "proj"
    root.mkdir()
    (root / "amelia.yaml").write_text(PIPE)
    (root / "in.txt").write_text("1\n")
    r = subprocess.run([sys.executable, "-m", "amelia", "run"], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture
def damaged(project, built):
    shutil.copytree(built, project.root, dirs_exist_ok=True)
    return project


# Each command and a table it reads (a damaged table it does not read is not its business).
READS = [("runs", ["run"]), ("runs", ["runs"]), ("runs", ["show", "last"]),
         ("records", ["run"]), ("records", ["cache", "verify"]), ("records", ["cache", "gc"])]


@pytest.mark.parametrize("table,command", READS)
def test_a_damaged_table_is_exit_4_with_a_hint(damaged, table, command):
    damage_page(damaged.root / ".amelia/state.db", table)
    r = damaged.run(*command)
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert_golden(r.stderr, GOLDEN / "damaged.txt")


def test_a_truncated_state_db(damaged):
    db = damaged.root / ".amelia/state.db"
    db.write_bytes(db.read_bytes()[:100])
    r = damaged.run("runs")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert_golden(r.stderr, GOLDEN / "damaged.txt")


def test_doctor_says_the_store_is_damaged(damaged):
    damage_page(damaged.root / ".amelia/state.db", "runs")
    r = damaged.run("doctor")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert "FAIL  state.db" in r.stdout and "damaged" in r.stdout


def test_a_garbage_state_db_with_debug_shows_the_traceback(damaged):
    (damaged.root / ".amelia/state.db").write_bytes(b"garbage " * 1000)
    r = damaged.run("--debug", "runs")
    assert r.returncode == 4 and "Traceback" in r.stderr and "sqlite3.DatabaseError" in r.stderr
    assert r.stderr.rstrip().endswith("so steps run once more")


# -- a read-only store ----------------------------------------------------------------------

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def _drop_file_capabilities():
    """In the child, before exec: drop the capabilities that let root ignore file modes
    from the bounding set, so the program it runs gets none of them (a real permission
    check by the kernel, as for any user)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def chmod_bites() -> dict:
    """subprocess arguments under which chmod a-w is obeyed: none for a user; for root,
    a child without CAP_DAC_OVERRIDE (skipped where it cannot drop it)."""
    if os.geteuid() != 0:
        return {}
    kw = {"preexec_fn": _drop_file_capabilities}
    d = Path(tempfile.mkdtemp())
    try:
        d.chmod(0o555)
        probe = subprocess.run([sys.executable, "-c", f"open({str(d / 'x')!r}, 'w')"], capture_output=True, **kw)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("root, and capabilities cannot be dropped here")
    finally:
        d.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)
    if probe.returncode == 0:
        pytest.skip("root, and chmod does not bite even without CAP_DAC_OVERRIDE")
    return kw


def test_a_read_only_store_is_exit_4_with_a_hint(project):
    kw = chmod_bites()
    project.pipeline(PIPE)
    project.write("in.txt", "1\n")
    project.run("run", check=0)
    project.write("in.txt", "2\n")
    store = project.root / ".amelia"
    store.chmod(0o555)
    try:
        for command in (["run"], ["runs"], ["cache", "gc"]):
            r = subprocess.run([sys.executable, "-m", "amelia", *command], cwd=project.root, capture_output=True,
                               text=True, timeout=120, **kw)
            assert r.returncode == 4 and "Traceback" not in r.stderr, r.stdout + r.stderr
            assert_golden(r.stderr, GOLDEN / "read_only.txt")
    finally:
        store.chmod(0o755)
    project.run("run", check=0)
    assert project.read("build/a.txt") == "2\n"


def test_a_store_that_cannot_be_made_is_a_store_problem(tmp_path):
    kw = chmod_bites()
    root = tmp_path / "proj"
    root.mkdir()
    root.chmod(0o555)
    script = ("from amelia.store import Store\nfrom amelia.errors import StoreProblem\n"
              "try:\n    Store('.')\nexcept StoreProblem as e:\n    print(e.render())\n")
    try:
        r = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, **kw)
    finally:
        root.chmod(0o755)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == (".amelia: error: the store cannot be written (Permission denied)\n"
                        "  hint: make . writable: amelia keeps its cache and run history in .amelia there\n")
