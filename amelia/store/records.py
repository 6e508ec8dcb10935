"""Step records by cache key (DESIGN §3, §12): what a step produced for one key.

A record is written only after its step succeeded and its outputs are objects, so a
record never points at nothing. `Records` is the local (SQLite) implementation of the
`interfaces.RecordStore` seam (`get`, `save`, `heads`); the rest of its methods
(`latest_detail`, `all_outputs`, `delete`, `clear`) serve the planner's reasons and
`cache gc | verify` on this machine.

A record's input hashes (detail["inputs"], one per input file) are not stored in the
record: they go into a shared, content-addressed input set (inputsets.py) that the
record names in its `inputs` column, and come back in `detail` when it is read.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple


class Record(namedtuple("Record", "key step outputs detail run_id duration created",
                        defaults=("", 0.0, None))):
    """One step result: its cache key, its outputs (path → object digest), and the key
    material it was computed from (what a later key is compared with for reasons);
    created is set by the store when None. Immutable; a namedtuple because the fast
    no-op imports this module (a dataclass costs ~0.6 ms to define, `typing` ~2 ms)."""

    __slots__ = ()


class RecordHead(namedtuple("RecordHead", "key step outputs")):
    """A record without its key material: enough to restore, plan and collect garbage."""

    __slots__ = ()


class Records:
    """The `records` table of state.db, behind the narrow interface of interfaces.RecordStore."""

    def __init__(self, db):
        self._db = db  # StateDB: the shared connection, its lock and transaction()

    # -- the seam (interfaces.RecordStore) --------------------------------------------
    def get(self, key: str) -> Record | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT key, step, outputs, detail, run_id, duration, created, inputs FROM records WHERE key=?",
                (key,)).fetchone()
            if not row:
                return None
            detail = _detail(conn, row[3], row[7])
        return Record(row[0], row[1], json.loads(row[2]), detail, row[4] or "", row[5] or 0.0, row[6])

    def save(self, record: Record) -> None:
        self.save_many([record])

    def save_many(self, records) -> None:
        """Several records in one transaction (a group commit)."""
        now = time.time()
        with self._db.transaction() as conn:
            rows = []
            for r in records:
                detail, inputs = externalize(conn, r.detail)
                rows.append((r.key, r.step, json.dumps(r.outputs, sort_keys=True), detail,
                             now if r.created is None else r.created, r.run_id, r.duration, inputs))
            conn.executemany("INSERT OR REPLACE INTO records"
                             "(key, step, outputs, detail, created, run_id, duration, inputs) "
                             "VALUES (?,?,?,?,?,?,?,?)", rows)

    def heads(self, steps) -> dict:
        """key → (step, outputs) of every record of the given step ids (what the planner looks keys up in)."""
        steps = list(steps)
        out = {}
        with self._db.reading():
            for i in range(0, len(steps), 500):
                chunk = steps[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for key, step, outputs in self._db.conn.execute(
                        f"SELECT key, step, outputs FROM records WHERE step IN ({marks})", chunk):
                    out[key] = (step, json.loads(outputs))
        return out

    # -- local only ----------------------------------------------------------------------
    def durations(self, steps) -> dict:
        """step → how long its newest record took to make (seconds), for the given step ids."""
        steps = list(steps)
        out: dict = {}
        with self._db.reading():
            for i in range(0, len(steps), 500):
                chunk = steps[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for step, duration in self._db.conn.execute(
                        f"SELECT step, duration FROM records WHERE step IN ({marks}) ORDER BY created",
                        chunk):
                    if duration is not None:
                        out[step] = duration
        return out

    def latest_detail(self, step: str) -> dict | None:
        """The key material of the step's last good result: the key of its last ran/cached
        row in run history (index run_steps_step), else its newest record."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT r.detail, r.inputs FROM run_steps s JOIN records r ON r.key = s.key "
                "WHERE s.step=? AND s.status IN ('ran', 'cached') ORDER BY s.started DESC LIMIT 1",
                (step,)).fetchone()
            if not row:
                row = conn.execute(
                    "SELECT detail, inputs FROM records WHERE step=? ORDER BY created DESC LIMIT 1",
                    (step,)).fetchone()
            return _detail(conn, row[0], row[1]) if row else None

    def all_outputs(self) -> list[RecordHead]:
        """Every record's (key, step, outputs), newest first: for `cache gc` and `cache verify`."""
        with self._db.reading() as conn:
            rows = conn.execute("SELECT key, step, outputs FROM records ORDER BY created DESC, key").fetchall()
        return [RecordHead(k, s, json.loads(o)) for k, s, o in rows]

    def delete(self, keys) -> None:
        """Drop the records, and the input sets no record names any more."""
        keys = [(k,) for k in keys]
        if not keys:
            return
        from . import inputsets

        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM records WHERE key=?", keys)
            inputsets.sweep(conn)

    def clear(self) -> None:
        with self._db.transaction() as conn:
            for table in ("records", "input_sets", "input_chunks"):
                conn.execute(f"DELETE FROM {table}")


def externalize(conn, detail: dict) -> tuple[str, str | None]:
    """(detail as JSON without its input hashes, the name of their input set), the set
    stored inside the caller's transaction; (detail as JSON, None) when it has no input map."""
    inputs = detail.get("inputs") if isinstance(detail, dict) else None
    from . import inputsets

    if not inputsets.is_input_map(inputs):
        return json.dumps(detail, sort_keys=True), None
    name = inputsets.save(conn, inputs)
    return json.dumps({k: v for k, v in detail.items() if k != "inputs"}, sort_keys=True), name


def _detail(conn, text: str, inputs: str | None) -> dict:
    """A record's detail as saved: its input hashes put back from their set."""
    detail = json.loads(text)
    if inputs is not None:
        from . import inputsets

        # A set that is gone (never, unless state.db was edited) reads as no inputs:
        # detail only explains why a step runs, never decides whether it does.
        detail["inputs"] = inputsets.load(conn, inputs) or {}
        detail = dict(sorted(detail.items()))
    return detail
