"""Run history in state.db: runs, each run's steps, model usage, events.

History is local to one project (never part of a shared cache). Its rows are typed:
`StepRow` (one step of one run), `UsageRow` (one model call), `EventRow` (one event);
`finish_run` and `add_usage` also take the plain tuples older callers build, field for
field in the same order.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple

from ..errors import StoreProblem

MAX_LIMIT = 2**63 - 1  # SQLite's largest integer


class StepRow(namedtuple("StepRow", "run_id step status reason key started duration exit_code error",
                         defaults=("", None, None, None, None, None))):
    """What one step did in one run. status: running | ran | cached | failed | skipped | cancelled.
    (A namedtuple, as Record: the no-op records its run with these, and a dataclass costs
    ~0.6 ms to define at import.)"""

    __slots__ = ()

    @classmethod
    def of(cls, row) -> StepRow:
        """A StepRow from a StepRow, or from a tuple/list in field order."""
        return row if isinstance(row, cls) else cls(*row)

    def as_tuple(self) -> tuple:
        return tuple(self)


class UsageRow(namedtuple("UsageRow", "run_id step seq provider model input_tokens output_tokens "
                          "cached_tokens cache_write_tokens latency retries cost created",
                          defaults=(None,) * 8)):
    """One model call: tokens, latency, retries and cost. seq numbers the step's calls from
    1; created is set by the store when None. (collections.namedtuple, not typing's: the
    fast no-op imports this module, and `typing` alone costs ~2 ms.)"""

    __slots__ = ()

    @classmethod
    def of(cls, row) -> UsageRow:
        return row if isinstance(row, cls) else cls(*row)


class EventRow(namedtuple("EventRow", "run_id seq time type data")):
    """One event of a run, as JSON (`data`), numbered by seq within the run."""

    __slots__ = ()

    @classmethod
    def of(cls, row) -> EventRow:
        return row if isinstance(row, cls) else cls(*row)


def _row(cls, row) -> tuple:
    """The SQL parameters of a row given as `cls` or as a tuple; checks the arity either way."""
    if isinstance(row, StepRow):
        return row.as_tuple()
    row = tuple(row)
    n = len(_STEP_FIELDS) if cls is StepRow else len(cls._fields)
    if len(row) != n:
        raise ValueError(f"a {cls.__name__} has {n} fields, got {len(row)}: {row!r}")
    return row


class History:
    """Runs, their steps, model usage and events (tables runs, run_steps, usage, events)."""

    def __init__(self, db):
        self._db = db  # StateDB: the shared connection, its lock and transaction()

    # -- writing ---------------------------------------------------------------------
    def start_run(self, run_id: str, pipeline: str, file: str, argv: list) -> None:
        """Record a run as running. The caller holds the project lock, so a run still
        marked running is one whose process died (kill -9, power loss): say so."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE runs SET status='died' WHERE status='running'")
            conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                         (run_id, pipeline, file, time.time(), None, "running", json.dumps(argv), None))

    def finish_run(self, run_id: str, status: str, summary: dict, steps, events=()) -> None:
        """The run's outcome, its steps (StepRow) and its events (EventRow), in one transaction.

        If that cannot be written (a full disk), the run is still marked `failed` if a
        smaller write gets through, so it is not left `running`; the first error is raised
        either way. (If nothing can be written, the next run marks it `died`: start_run.)"""
        try:
            with self._db.transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO run_steps VALUES (?,?,?,?,?,?,?,?,?)",
                                 (_row(StepRow, s) for s in steps))
                conn.executemany("INSERT OR REPLACE INTO events VALUES (?,?,?,?,?)",
                                 (_row(EventRow, e) for e in events))
                conn.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
                             (time.time(), status, json.dumps(summary), run_id))
        except StoreProblem:
            self.mark_failed(run_id)
            raise

    def mark_failed(self, run_id: str) -> bool:
        """Mark a run that a store error stopped as `failed` (if it is still `running`);
        False when even that cannot be written. Never raises: it runs while another
        error is on its way to the user."""
        try:
            with self._db.transaction() as conn:
                conn.execute("UPDATE runs SET finished=?, status='failed' WHERE id=? AND status='running'",
                             (time.time(), run_id))
        except StoreProblem:
            return False
        return True

    def add_usage(self, row) -> None:
        """One model call (UsageRow), written at once: a crash later in the run keeps what was spent."""
        values = _row(UsageRow, row)
        if values[-1] is None:
            values = values[:-1] + (time.time(),)
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values)

    # -- reading ---------------------------------------------------------------------
    def runs(self, limit: int = 20) -> list[dict]:
        """The newest runs first, each a dict of the runs columns (argv and summary decoded).
        A limit beyond SQLite's integers means all of them (`runs -n 10**20`)."""
        if limit < 0:
            raise ValueError(f"a negative limit means no limit in SQLite; got {limit}")
        limit = min(limit, MAX_LIMIT)
        with self._db.reading():
            cur = self._db.conn.execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
            cols = [c[0] for c in cur.description]
            return [_run_row(dict(zip(cols, r))) for r in cur]

    def run_ids(self) -> list[str]:
        with self._db.reading():
            return [r[0] for r in self._db.conn.execute("SELECT id FROM runs ORDER BY started DESC")]

    def run(self, run_id: str) -> dict | None:
        """One run as a dict, with "steps": its StepRows as dicts (in the order they started)."""
        with self._db.reading():
            cur = self._db.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,))
            cols = [c[0] for c in cur.description]
            row = cur.fetchone()
            if not row:
                return None
            run = _run_row(dict(zip(cols, row)))
        run["steps"] = [dict(zip(_STEP_FIELDS, s.as_tuple())) for s in self.steps(run_id)]
        return run

    def steps(self, run_id: str) -> list[StepRow]:
        with self._db.reading():
            rows = self._db.conn.execute(
                f"SELECT {', '.join(_STEP_FIELDS)} FROM run_steps WHERE run_id=? ORDER BY started, step",
                (run_id,)).fetchall()
        return [StepRow(*r) for r in rows]

    def events(self, run_id: str) -> list[EventRow]:
        with self._db.reading():
            rows = self._db.conn.execute(
                "SELECT run_id, seq, time, type, data FROM events WHERE run_id=? ORDER BY seq",
                (run_id,)).fetchall()
        return [EventRow(*r) for r in rows]

    def usage_by_step(self, run_id: str) -> dict:
        """step → {calls, input_tokens, output_tokens, cached_tokens, retries, cost}."""
        with self._db.reading():
            cur = self._db.conn.execute(
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
        out = {}
        with self._db.reading():
            for i in range(0, len(run_ids), 500):
                chunk = run_ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._db.conn.execute(
                    f"SELECT run_id, SUM(input_tokens), SUM(output_tokens), SUM(cost) FROM usage "
                    f"WHERE run_id IN ({marks}) GROUP BY run_id", chunk)
                out.update({r[0]: {"input_tokens": r[1], "output_tokens": r[2], "cost": r[3]} for r in cur})
        return out


_STEP_FIELDS = StepRow._fields


def _run_row(d: dict) -> dict:
    d["argv"] = json.loads(d["argv"]) if d.get("argv") else []
    d["summary"] = json.loads(d["summary"]) if d.get("summary") else {}
    return d
