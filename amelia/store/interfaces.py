"""The two seams a shared remote cache implements (DESIGN §12): objects by hash, records by key.

Nothing here names SQLite or a path layout: an S3-compatible bucket can implement
both (as Bazel, Turborepo and DVC remotes do). The local implementations are
objects.ObjectStore and records.Records; run history, the file-state memo and the
resolved-pipeline memo stay local to a machine and are not part of these seams.

Rules an implementation keeps:

- An object is named by the sha256 of its bytes ("tree-" + sha256 for a directory
  manifest, see objects.tree_digest); a reader verifies the hash of what it receives.
- A record is saved only after every object it names has been put: a record never
  points at nothing. Records are immutable per key (saving one again is idempotent).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .records import Record


@runtime_checkable
class ContentStore(Protocol):
    """Objects by hash."""

    def has(self, digest: str) -> bool:
        """Whether the object is stored."""

    def put_file(self, src: str, digest: str | None = None) -> str:
        """Store a file's bytes (digest: a hint, to skip what is stored); returns its hash."""

    def put_bytes(self, data: bytes) -> str:
        """Store bytes (a tree manifest); returns their hash."""

    def read_tree(self, digest: str) -> dict[str, str]:
        """A directory's manifest: relative path → file hash."""

    def restore(self, digest: str, dst: str) -> None:
        """Write the object (a file, or a tree's files) at dst, verifying as it copies."""


@runtime_checkable
class RecordStore(Protocol):
    """Step records by cache key."""

    def get(self, key: str) -> Record | None:
        """The record saved under the key, or None."""

    def save(self, record: Record) -> None:
        """Save a record whose objects are all stored."""

    def heads(self, steps) -> dict:
        """key → (step, outputs) of the records of the given step ids (what a plan looks keys up in)."""
