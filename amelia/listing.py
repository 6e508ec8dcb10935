"""The digest of what a glob matches: a foreach over `{glob: …}` is resolved from the
directory listing, so the cached resolution keeps this digest among its sources (as
`glob:PATTERN`) and is redone when a file is added or removed. Shared by resolve
(foreach) and api (is a cached resolution still good), and cheap: one scandir per
directory the pattern reaches, no file read, no yaml.
"""

from __future__ import annotations

import hashlib

PREFIX = "glob:"  # a source entry that is a listing, not a file


def matched(root: str, pattern: str) -> list:
    """The files the pattern matches, relative to root, sorted (.amelia/.git never).
    Raises ValueError for a symlink that leads outside the root."""
    from .paths import expand

    return [rel for rel, _ in expand(root, pattern)]


def listing_digest(paths: list) -> str:
    return hashlib.sha256("\0".join(paths).encode("utf-8", "surrogateescape")).hexdigest()


def unchanged(root: str, entry: str, digest: str) -> bool:
    """Whether a `glob:PATTERN` source still matches the files it matched."""
    try:
        return listing_digest(matched(root, entry[len(PREFIX):])) == digest
    except (ValueError, OSError):
        return False
