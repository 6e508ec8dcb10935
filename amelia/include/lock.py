"""`amelia.lock`: the commit each remote recipe resolved to, so CI runs what the developer ran.

    {"version": 1, "recipes": {"git+URL//PATH@REF": {"url", "path", "ref", "commit"}}}

Sorted JSON ending in a newline (a stable diff in review), written atomically and only
when something changed. Every entry is checked on load: its key must be a valid git
recipe agreeing with its fields, its commit a full commit id, since both reach git.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NoReturn

from ..atomic import write_text
from .errors import RecipeError
from .refs import parse

VERSION = 1
MAX_BYTES = 4 * 1024 * 1024  # a lock names recipes, never megabytes of them
FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_FIELDS = ("url", "path", "ref", "commit")


@dataclass(frozen=True)
class LockEntry:
    """One pinned recipe: the repository, the recipe's path in it, the ref as written, and
    the full commit id it resolved to."""

    url: str
    path: str
    ref: str
    commit: str


class Lock:
    """The lock file at `path` (beside the pipeline file); `changed` until saved."""

    def __init__(self, path: str, entries: dict | None = None):
        self.path = path
        self._entries: dict = dict(entries or {})
        self.changed = False

    @classmethod
    def load(cls, path: str) -> "Lock":
        """The lock at path; an empty one when there is no file. A file that is not a valid
        lock is a RecipeError naming it."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return cls(path)
        except OSError as e:
            raise RecipeError(f"cannot read {path}: {e.strerror or e}",
                              "check its permissions, or delete it and run `amelia lock`") from e
        if len(data) > MAX_BYTES:
            _damaged(path, f"it is larger than {MAX_BYTES // (1024 * 1024)} MB")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            _damaged(path, f"it is not JSON ({e})")
        if not isinstance(doc, dict):
            _damaged(path, "it is not a JSON object")
        version = doc.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise RecipeError(f"{path} was written by a newer Amelia (lock version {version})",
                              "upgrade Amelia, or delete it and run `amelia lock`")
        if version != VERSION:
            _damaged(path, f'its "version" is {version!r}, not {VERSION}')
        recipes = doc.get("recipes")
        if not isinstance(recipes, dict):
            _damaged(path, 'it has no "recipes" object')
        entries = {}
        for key, value in recipes.items():
            entries[key] = _entry(path, key, value)
        return cls(path, entries)

    def get(self, key: str) -> LockEntry | None:
        return self._entries.get(key)

    def set(self, key: str, entry: LockEntry) -> None:
        if not isinstance(entry, LockEntry) or not FULL_COMMIT.fullmatch(entry.commit or ""):
            raise ValueError(f"not a lock entry with a full commit id: {entry!r}")
        if self._entries.get(key) != entry:
            self._entries[key] = entry
            self.changed = True

    def keep_only(self, keys) -> None:
        """Drop the entries no include names any more."""
        keep = set(keys)
        for key in [k for k in self._entries if k not in keep]:
            del self._entries[key]
            self.changed = True

    def keys(self) -> list:
        return sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def text(self) -> str:
        """The file's content: sorted JSON ending in a newline."""
        recipes = {k: {f: getattr(e, f) for f in _FIELDS} for k, e in self._entries.items()}
        doc = {"version": VERSION, "recipes": recipes}
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def save(self) -> bool:
        """Write the file when something changed (atomically); True when it was written."""
        if not self.changed:
            return False
        try:
            write_text(self.path, self.text(), durable=True)
        except OSError as e:
            raise RecipeError(f"cannot write {self.path}: {e.strerror or e}",
                              "check that its folder is writable") from e
        self.changed = False
        return True


def _damaged(path: str, why: str) -> NoReturn:
    raise RecipeError(f"{path} is damaged: {why}", "delete it and run `amelia lock`")


def _entry(path: str, key, value) -> LockEntry:
    shown = repr(key)[:200]
    try:
        ref = parse(key)
    except RecipeError as e:
        _damaged(path, f"the key {shown} is not a git recipe ({e.message})")
    if ref.kind != "git":
        _damaged(path, f"the key {shown} is not a git recipe (git+URL//PATH@REF)")
    if not isinstance(value, dict) or any(not isinstance(value.get(f), str) for f in _FIELDS):
        _damaged(path, f'the entry {shown} does not have the text fields {", ".join(_FIELDS)}')
    if (value["url"], value["path"], value["ref"]) != (ref.url, ref.path_in_repo, ref.ref):
        _damaged(path, f"the entry {shown} does not agree with its key")
    if not FULL_COMMIT.fullmatch(value["commit"]):
        _damaged(path, f"the commit of {shown} is not a full commit id")
    return LockEntry(value["url"], value["path"], value["ref"], value["commit"])
