"""state.db (SQLite, WAL): the connection, its schema and migrations, and the parts.

The parts, each behind a narrow interface on the one shared connection:

- `records`   step records by cache key          (records.Records; the interfaces.RecordStore seam)
- `history`   runs, their steps, usage, events   (history.History; rows: StepRow, UsageRow, EventRow)
- `memo`      the file-state memo                (memo.FileStateMemo)
- `pipelines` resolved pipelines by digest       (memo.PipelineMemo)

StateDB's own methods (record_heads, save_record, start_run, ...) are the older flat
interface; they delegate to the parts and stay for callers not yet switched.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager

from ..errors import EnvironmentProblem
from .history import History
from .memo import FileStateMemo, PipelineMemo
from .records import Record, Records

SCHEMA_VERSION = 3  # 2: usage table; 3: index run_steps(step, started) for latest_detail

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

# version → the statements that bring a database of the version before it there, in
# place and keeping its data. Each must be safe to run again (IF NOT EXISTS).
_UPGRADES = {
    # latest_detail(step) looks run_steps up by step: without this it scans the table.
    3: ("CREATE INDEX IF NOT EXISTS run_steps_step ON run_steps(step, started)",),
}


class StateDB:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.RLock()  # one connection, shared by the runner's threads
        self.conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        try:
            if self._version() != SCHEMA_VERSION:
                self._migrate()
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as e:
            self.conn.close()
            if isinstance(e, sqlite3.OperationalError):  # locked, unreadable: not damage
                raise
            raise EnvironmentProblem(f"{path} is damaged: {e}",
                                     hint="move it aside to start afresh (run history and the cache "
                                          "records in it are lost; the objects stay)") from None
        self.records = Records(self)
        self.history = History(self)
        self.memo = FileStateMemo(self)
        self.pipelines = PipelineMemo(self)

    def _version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        """Create or upgrade the schema in one transaction; a concurrent opener waits and
        then finds it done. A database from a newer Amelia is left as it is."""
        with self.lock:
            self.conn.execute("PRAGMA journal_mode=WAL")  # not allowed inside a transaction
            with self.transaction() as conn:
                version = self._version()
                if version >= SCHEMA_VERSION:
                    return
                for sql in _SCHEMA:
                    conn.execute(sql)
                for v in range(max(version, 2) + 1, SCHEMA_VERSION + 1):
                    for sql in _UPGRADES.get(v, ()):
                        conn.execute(sql)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self):
        """One writer transaction on the shared connection: all of it or none of it."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def integrity_check(self) -> str:
        """"ok", or SQLite's description of what is damaged."""
        with self.lock:
            rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    def clear(self) -> None:
        """Forget every cached result (records, file-state memo, resolved pipelines), in one
        transaction; run history is kept."""
        with self.transaction() as conn:
            for table in ("records", "file_state", "pipelines"):
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
