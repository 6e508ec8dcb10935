"""The two memos in state.db that make a no-op fast: file states and resolved pipelines.

Both are caches of what can be recomputed: losing them costs time, never correctness.
"""

from __future__ import annotations

import time

KEEP_PIPELINES = 20  # param overrides make several resolutions live at once


class FileStateMemo:
    """path → (size, mtime_ns, inode, hash): a file whose stat matches is not read again."""

    def __init__(self, db):
        self._db = db

    def load(self) -> dict:
        """The whole memo (read once per run: one query, no per-file round trips)."""
        with self._db.reading():
            return {r[0]: r[1:] for r in self._db.conn.execute("SELECT * FROM file_state")}

    def save(self, updates: dict) -> None:
        """Add or replace entries: {path: (size, mtime_ns, inode, hash)}."""
        if updates:
            with self._db.transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO file_state VALUES (?,?,?,?,?)",
                                 [(p,) + tuple(v) for p, v in updates.items()])

    def delete(self, paths) -> None:
        paths = [(p,) for p in paths]
        if paths:
            with self._db.transaction() as conn:
                conn.executemany("DELETE FROM file_state WHERE path=?", paths)

    def clear(self) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM file_state")


class PipelineMemo:
    """Resolved pipelines (spec JSON) by the digest of what they were resolved from."""

    def __init__(self, db):
        self._db = db

    def get(self, digest: str) -> str | None:
        with self._db.reading():
            row = self._db.conn.execute("SELECT data FROM pipelines WHERE digest=?", (digest,)).fetchone()
        return row[0] if row else None

    def save(self, digest: str, data: str) -> None:
        """Keep the KEEP_PIPELINES most recent."""
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO pipelines VALUES (?,?,?)", (digest, data, time.time()))
            conn.execute("DELETE FROM pipelines WHERE digest NOT IN "
                         "(SELECT digest FROM pipelines ORDER BY created DESC LIMIT ?)", (KEEP_PIPELINES,))

    def clear(self) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM pipelines")
