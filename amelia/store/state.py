"""state.db (SQLite, WAL): the connection, its schema and migrations, and the parts.

The parts, each behind a narrow interface on the one shared connection:

- `records`   step records by cache key          (records.Records; the interfaces.RecordStore seam)
- `history`   runs, their steps, usage, events   (history.History; rows: StepRow, UsageRow, EventRow)
- `memo`      the file-state memo                (memo.FileStateMemo)
- `pipelines` resolved pipelines by digest       (memo.PipelineMemo)
- `chats`     chat sessions and their messages   (chats.Chats)

StateDB's own methods (record_heads, save_record, start_run, ...) are the older flat
interface; they delegate to the parts and stay for callers not yet switched.

Every SQLite error leaves here as errors.StoreProblem (exit 4: damaged, read-only, full
disk, locked; see problems.py): the parts read through `reading()` and write through
`transaction()`, which both translate. A failed transaction is rolled back only if
SQLite has not already done so, and a failed rollback never hides the error that
caused it (a full disk used to surface as "cannot rollback - no transaction is active").
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager

from ..errors import StoreProblem
from .chats import Chats
from .history import History
from .memo import FileStateMemo, PipelineMemo
from .records import Record, Records

# 2: usage table; 3: index run_steps(step, started) for latest_detail; 4: input sets
# (records name their input hashes in input_sets/input_chunks instead of holding them);
# 5: chat sessions and messages (`amelia chat`)
SCHEMA_VERSION = 5

# The tables as of version 2; a new database gets them, then every upgrade below.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS file_state(
  path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, hash TEXT) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS pipelines(digest TEXT PRIMARY KEY, data TEXT, created REAL)",
    """CREATE TABLE IF NOT EXISTS records(
  key TEXT PRIMARY KEY, step TEXT, outputs TEXT, detail TEXT, created REAL, run_id TEXT, duration REAL)""",
    "CREATE INDEX IF NOT EXISTS records_step ON records(step, created)",
    """CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY, pipeline TEXT, file TEXT, started REAL, finished REAL, status TEXT,
  argv TEXT, summary TEXT)""",
    """CREATE TABLE IF NOT EXISTS run_steps(
  run_id TEXT, step TEXT, status TEXT, reason TEXT, key TEXT, started REAL, duration REAL,
  exit_code INTEGER, error TEXT, PRIMARY KEY(run_id, step))""",
    """CREATE TABLE IF NOT EXISTS usage(
  run_id TEXT, step TEXT, seq INTEGER, provider TEXT, model TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cached_tokens INTEGER, cache_write_tokens INTEGER, latency REAL,
  retries INTEGER, cost REAL, created REAL)""",
    "CREATE INDEX IF NOT EXISTS usage_run ON usage(run_id, step)",
    """CREATE TABLE IF NOT EXISTS events(run_id TEXT, seq INTEGER, time REAL, type TEXT, data TEXT,
  PRIMARY KEY(run_id, seq))""",
)


def _records_inputs_column(conn) -> None:
    """records.inputs: the hash of the record's input set (NULL: its detail holds them)."""
    if "inputs" not in {r[1] for r in conn.execute("PRAGMA table_info(records)")}:
        conn.execute("ALTER TABLE records ADD COLUMN inputs TEXT")


def _move_record_inputs(conn) -> None:
    """Records of schema 3 keep their input hashes in detail: move them into sets."""
    from .records import externalize

    for key, detail in conn.execute("SELECT key, detail FROM records WHERE inputs IS NULL").fetchall():
        text, name = externalize(conn, json.loads(detail))
        if name is not None:
            conn.execute("UPDATE records SET detail=?, inputs=? WHERE key=?", (text, name, key))


# version → the statements (SQL, or a function of the connection) that bring a database
# of the version before it there, in place and keeping its data, inside the migration's
# transaction. Each must be safe to run again (IF NOT EXISTS, or checks first).
_UPGRADES = {
    # latest_detail(step) looks run_steps up by step: without this it scans the table.
    3: ("CREATE INDEX IF NOT EXISTS run_steps_step ON run_steps(step, started)",),
    4: ("CREATE TABLE IF NOT EXISTS input_chunks(hash BLOB PRIMARY KEY, data BLOB)",
        "CREATE TABLE IF NOT EXISTS input_sets(hash TEXT PRIMARY KEY, chunks BLOB)",
        _records_inputs_column, _move_record_inputs),
    5: ("CREATE TABLE IF NOT EXISTS chat_sessions(id TEXT PRIMARY KEY, created REAL, updated REAL, "
        "model TEXT, source TEXT, title TEXT)",
        "CREATE INDEX IF NOT EXISTS chat_sessions_updated ON chat_sessions(updated)",
        """CREATE TABLE IF NOT EXISTS chat_messages(
  session TEXT, seq INTEGER, role TEXT, content TEXT, model TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cost REAL, time REAL, PRIMARY KEY(session, seq))"""),
}


class StateDB:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.RLock()  # one connection, shared by the runner's threads
        try:
            self.conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            from .problems import sqlite_problem  # the error path only: not on the no-op path

            raise sqlite_problem(path, e) from e
        try:
            with self.reading():
                version = self._version()
            if version != SCHEMA_VERSION:
                self._migrate()
            with self.reading():
                self.conn.execute("PRAGMA synchronous=NORMAL")
        except StoreProblem:
            self.close()
            raise
        self.records = Records(self)
        self.history = History(self)
        self.memo = FileStateMemo(self)
        self.pipelines = PipelineMemo(self)
        self.chats = Chats(self)

    def _version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        """Create or upgrade the schema in one transaction; a concurrent opener waits and
        then finds it done. A database from a newer Amelia is left as it is."""
        with self.reading():
            self.conn.execute("PRAGMA journal_mode=WAL")  # not allowed inside a transaction
        with self.transaction() as conn:
            version = self._version()
            if version >= SCHEMA_VERSION:
                return
            for sql in _SCHEMA:
                conn.execute(sql)
            for v in range(max(version, 2) + 1, SCHEMA_VERSION + 1):
                for step in _UPGRADES.get(v, ()):
                    if callable(step):
                        step(conn)
                    else:
                        conn.execute(step)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:  # a checkpoint that could not run: the WAL keeps the data
            pass

    def problem(self, e: sqlite3.Error) -> StoreProblem:
        from .problems import sqlite_problem

        return sqlite_problem(self.path, e)

    @contextmanager
    def reading(self):
        """The shared connection, for reads: SQLite's errors come out as StoreProblem."""
        with self.lock:
            try:
                yield self.conn
            except sqlite3.Error as e:
                raise self.problem(e) from e

    @contextmanager
    def transaction(self):
        """One writer transaction on the shared connection: all of it or none of it.
        SQLite's errors come out as StoreProblem; the first one is the one reported."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.Error as e:
                raise self.problem(e) from e

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it does itself after a
        full disk or an I/O error); a rollback that fails too is not the error to report."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def integrity_check(self) -> str:
        """"ok", or what is damaged: SQLite's description, or why the check could not run."""
        try:
            with self.reading():
                rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        except StoreProblem as e:
            return f"{e.message}; {e.hint}" if e.hint else e.message
        return "; ".join(str(r[0]) for r in rows)

    def clear(self) -> None:
        """Forget every cached result (records, file-state memo, resolved pipelines), in one
        transaction; run history is kept."""
        with self.transaction() as conn:
            for table in ("records", "input_sets", "input_chunks", "file_state", "pipelines"):
                conn.execute(f"DELETE FROM {table}")

    # -- the older flat interface: delegates to the parts ---------------------------------
    def file_states(self) -> dict:
        return self.memo.load()

    def save_file_states(self, states: dict) -> None:
        self.memo.save(states)

    def delete_file_states(self, paths) -> None:
        self.memo.delete(paths)

    def pipeline(self, digest: str) -> str | None:
        return self.pipelines.get(digest)

    def save_pipeline(self, digest: str, data: str) -> None:
        self.pipelines.save(digest, data)

    def record_heads(self, steps) -> dict:
        """key → (step, outputs) for the given step ids."""
        return self.records.heads(steps)

    def latest_detail(self, step: str) -> dict | None:
        return self.records.latest_detail(step)

    def save_record(self, key: str, step: str, outputs: dict, detail: dict, run_id: str,
                    duration: float) -> None:
        self.records.save(Record(key, step, outputs, detail, run_id, duration))

    def all_record_outputs(self):
        return self.records.all_outputs()

    def delete_records(self, keys) -> None:
        self.records.delete(keys)

    def start_run(self, run_id: str, pipeline: str, file: str, argv: list) -> None:
        self.history.start_run(run_id, pipeline, file, argv)

    def finish_run(self, run_id: str, status: str, summary: dict, steps: list, events: list) -> None:
        """steps: StepRow or 9-tuples; events: EventRow or 5-tuples."""
        self.history.finish_run(run_id, status, summary, steps, events)

    def add_usage(self, row) -> None:
        self.history.add_usage(row)

    def usage_by_step(self, run_id: str) -> dict:
        return self.history.usage_by_step(run_id)

    def usage_totals(self, run_ids) -> dict:
        return self.history.usage_totals(run_ids)

    def runs(self, limit: int = 20) -> list[dict]:
        return self.history.runs(limit)

    def run_ids(self) -> list[str]:
        return self.history.run_ids()

    def run(self, run_id: str) -> dict | None:
        return self.history.run(run_id)
