"""Confinement at the moment of each write: no file outside the project root is written,
deleted or reached through a symlink.

The pipeline's paths are checked when the file is parsed, but the disk can change after
that (a cached resolution is not parsed again, and a user may swap `build/` for a link),
so every restore and every clean of a step's outputs checks the real path right before
it acts. A symlink in the way is an error naming it, never followed.
"""

from __future__ import annotations

import os


class Escape(Exception):
    """A path reaches outside the project through a symlink."""

    def __init__(self, rel: str, target: str):
        super().__init__(f"{rel} is a symlink to {target}, outside the project")
        self.rel = rel
        self.target = target

    hint = "amelia does not write through links that leave the project; remove the link"


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root + os.sep)


def _culprit(root: str, rel: str) -> Escape:
    """The first component of rel whose real path leaves the root, as an Escape."""
    real_root = os.path.realpath(root)
    parts = rel.replace(os.sep, "/").strip("/").split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        full = os.path.join(root, sub)
        if os.path.islink(full) and not _inside(os.path.realpath(full), real_root):
            return Escape(sub, os.readlink(full))
    return Escape(rel, os.path.realpath(os.path.join(root, rel)))


def check_parent(root: str, full: str) -> None:
    """The directory that holds `full` is inside the project, links resolved.

    The last component itself may be a link: it is replaced or removed, not followed."""
    real = os.path.realpath(os.path.dirname(full))
    if not _inside(real, os.path.realpath(root)):
        raise _culprit(root, os.path.relpath(os.path.dirname(full), root))


def check_dir(root: str, full: str) -> None:
    """`full` (a directory to write into or empty) is inside the project, links resolved."""
    real = os.path.realpath(full)
    if not _inside(real, os.path.realpath(root)):
        raise _culprit(root, os.path.relpath(full, root))


def check_output(root: str, output: str) -> None:
    """A declared output (a directory ends with '/') is reached inside the project: its
    parent, and a directory output itself, links resolved."""
    full = os.path.join(root, output.rstrip("/"))
    check_parent(root, full)
    if output.endswith("/"):
        check_dir(root, full)
