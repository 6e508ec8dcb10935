"""state.db (SQLite, WAL): file-state memo, resolved pipelines, step records, runs.

Step records are keyed by cache key and written only after the step succeeded and
its objects exist (DESIGN §3). The two narrow seams a remote cache would implement
later are ObjectStore (objects by hash) and the `records` methods here (by key).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager

SCHEMA_VERSION = 2  # 2: usage table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_state(
  path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, hash TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pipelines(digest TEXT PRIMARY KEY, data TEXT, created REAL);
CREATE TABLE IF NOT EXISTS records(
  key TEXT PRIMARY KEY, step TEXT, outputs TEXT, detail TEXT, created REAL, run_id TEXT, duration REAL);
CREATE INDEX IF NOT EXISTS records_step ON records(step, created);
CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY, pipeline TEXT, file TEXT, started REAL, finished REAL, status TEXT,
  argv TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS run_steps(
  run_id TEXT, step TEXT, status TEXT, reason TEXT, key TEXT, started REAL, duration REAL,
  exit_code INTEGER, error TEXT, PRIMARY KEY(run_id, step));
CREATE TABLE IF NOT EXISTS usage(
  run_id TEXT, step TEXT, seq INTEGER, provider TEXT, model TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cached_tokens INTEGER, cache_write_tokens INTEGER, latency REAL,
  retries INTEGER, cost REAL, created REAL);
CREATE INDEX IF NOT EXISTS usage_run ON usage(run_id, step);
CREATE TABLE IF NOT EXISTS events(run_id TEXT, seq INTEGER, time REAL, type TEXT, data TEXT,
  PRIMARY KEY(run_id, seq));
"""


class StateDB:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.RLock()  # one connection, shared by the runner's threads
        self.conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            self._migrate(version)
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def _migrate(self, version: int) -> None:
        with self.lock:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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

    def _write(self, sql: str, rows) -> None:
        with self.transaction() as conn:
            conn.executemany(sql, rows)

    # -- file-state memo -----------------------------------------------------------
    def file_states(self) -> dict:
        with self.lock:
            return {r[0]: r[1:] for r in self.conn.execute("SELECT * FROM file_state")}

    def save_file_states(self, states: dict) -> None:
        if states:
            self._write("INSERT OR REPLACE INTO file_state VALUES (?,?,?,?,?)",
                        [(p,) + tuple(v) for p, v in states.items()])

    def delete_file_states(self, paths) -> None:
        self._write("DELETE FROM file_state WHERE path=?", [(p,) for p in paths])

    # -- resolved pipelines --------------------------------------------------------
    def pipeline(self, digest: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT data FROM pipelines WHERE digest=?", (digest,)).fetchone()
        return row[0] if row else None

    def save_pipeline(self, digest: str, data: str) -> None:
        # Keep the few most recent: param overrides make several live at once.
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO pipelines VALUES (?,?,?)", (digest, data, time.time()))
            conn.execute("DELETE FROM pipelines WHERE digest NOT IN "
                         "(SELECT digest FROM pipelines ORDER BY created DESC LIMIT 20)")

    # -- step records --------------------------------------------------------------
    def record_heads(self, steps) -> dict:
        """key → (step, outputs) for the given step ids."""
        steps = list(steps)
        out = {}
        with self.lock:
            for i in range(0, len(steps), 500):
                chunk = steps[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for key, step, outputs in self.conn.execute(
                        f"SELECT key, step, outputs FROM records WHERE step IN ({marks})", chunk):
                    out[key] = (step, json.loads(outputs))
        return out

    def latest_detail(self, step: str) -> dict | None:
        """The key material of the step's last good result: what a new key is compared with."""
        with self.lock:
            row = self.conn.execute(
                "SELECT r.detail FROM run_steps s JOIN records r ON r.key = s.key "
                "WHERE s.step=? AND s.status IN ('ran', 'cached') ORDER BY s.started DESC LIMIT 1",
                (step,)).fetchone()
            if not row:
                row = self.conn.execute(
                    "SELECT detail FROM records WHERE step=? ORDER BY created DESC LIMIT 1", (step,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_record(self, key: str, step: str, outputs: dict, detail: dict, run_id: str,
                    duration: float) -> None:
        self._write("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)",
                    [(key, step, json.dumps(outputs, sort_keys=True), json.dumps(detail, sort_keys=True),
                      time.time(), run_id, duration)])

    def all_record_outputs(self):
        with self.lock:
            return [(k, s, json.loads(o)) for k, s, o in
                    self.conn.execute("SELECT key, step, outputs FROM records")]

    def delete_records(self, keys) -> None:
        self._write("DELETE FROM records WHERE key=?", [(k,) for k in keys])

    # -- runs ----------------------------------------------------------------------
    def start_run(self, run_id: str, pipeline: str, file: str, argv: list) -> None:
        """Record a run as running. The caller holds the project lock, so a run still
        marked running is one whose process died (kill -9, power loss): say so."""
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET status='died' WHERE status='running'")
            conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                         (run_id, pipeline, file, time.time(), None, "running", json.dumps(argv), None))

    def finish_run(self, run_id: str, status: str, summary: dict, steps: list, events: list) -> None:
        """The run's outcome, its steps and its events, in one transaction."""
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO run_steps VALUES (?,?,?,?,?,?,?,?,?)", steps)
            conn.executemany("INSERT OR REPLACE INTO events VALUES (?,?,?,?,?)", events)
            conn.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
                         (time.time(), status, json.dumps(summary), run_id))

    # -- model usage -------------------------------------------------------------------
    def add_usage(self, row: tuple) -> None:
        """One model call, written at once: a crash later in the run keeps what was spent."""
        self._write("INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", [row])

    def usage_by_step(self, run_id: str) -> dict:
        """step → {calls, input_tokens, output_tokens, cached_tokens, retries, cost}."""
        with self.lock:
            cur = self.conn.execute(
                "SELECT step, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), "
                "SUM(retries), SUM(cost), COUNT(cost) FROM usage WHERE run_id=? GROUP BY step", (run_id,))
            return {r[0]: {"calls": r[1], "input_tokens": r[2], "output_tokens": r[3],
                           "cached_tokens": r[4], "retries": r[5],
                           "cost": r[6] if r[7] == r[1] else (r[6] if r[7] else None)}
                    for r in cur}

    def usage_totals(self, run_ids) -> dict:
        """run → {input_tokens, output_tokens, cost} for the given runs."""
        run_ids = list(run_ids)
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        with self.lock:
            cur = self.conn.execute(
                f"SELECT run_id, SUM(input_tokens), SUM(output_tokens), SUM(cost) FROM usage "
                f"WHERE run_id IN ({marks}) GROUP BY run_id", run_ids)
            return {r[0]: {"input_tokens": r[1], "output_tokens": r[2], "cost": r[3]} for r in cur}

    def runs(self, limit: int = 20) -> list[dict]:
        with self.lock:
            cur = self.conn.execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
            cols = [c[0] for c in cur.description]
            return [_run_row(dict(zip(cols, r))) for r in cur]

    def run_ids(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY started DESC")]

    def run(self, run_id: str) -> dict | None:
        with self.lock:
            cur = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,))
            cols = [c[0] for c in cur.description]
            row = cur.fetchone()
            if not row:
                return None
            run = _run_row(dict(zip(cols, row)))
            cur = self.conn.execute("SELECT * FROM run_steps WHERE run_id=? ORDER BY started, step", (run_id,))
            cols = [c[0] for c in cur.description]
            run["steps"] = [dict(zip(cols, r)) for r in cur]
        return run

    def clear(self) -> None:
        with self.lock:
            self.conn.executescript(
                "DELETE FROM records; DELETE FROM file_state; DELETE FROM pipelines;")


def _run_row(d: dict) -> dict:
    d["argv"] = json.loads(d["argv"]) if d.get("argv") else []
    d["summary"] = json.loads(d["summary"]) if d.get("summary") else {}
    return d
