"""Project-relative paths: confinement checks, glob matching and fast expansion.

Globs: `*` and `?` stay within one path segment, `**` spans any number of them,
`[abc]` is a class. The store (.amelia) and .git are never matched.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

GLOB_CHARS = frozenset("*?[")
SKIP_DIRS = frozenset((".amelia", ".git"))


def is_glob(pattern: str) -> bool:
    return not GLOB_CHARS.isdisjoint(pattern)


def normalize(path: str) -> str:
    """'./a//b/' → 'a/b/' (a trailing slash marks a directory and is kept)."""
    trailing = path.endswith("/")
    norm = os.path.normpath(path).replace(os.sep, "/")
    if norm == ".":
        return ""
    return norm + "/" if trailing and not norm.endswith("/") else norm


def confinement_problem(path: str, root: str) -> str | None:
    """Why `path` would leave the project root, or None when it stays inside."""
    if os.path.isabs(path) or path.startswith("~"):
        return "is an absolute path"
    norm = os.path.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return "leaves the project root ('..')"
    # A symlink on the way may point outside: check the existing prefix on disk.
    literal = literal_prefix(path)
    probe = os.path.join(root, literal) if literal else root
    real_root = os.path.realpath(root)
    real = os.path.realpath(probe)
    if real != real_root and not real.startswith(real_root + os.sep):
        return "leads outside the project root through a symlink"
    return None


def literal_prefix(pattern: str) -> str:
    """The directory part of a pattern before its first wildcard."""
    if not is_glob(pattern):
        return pattern.rstrip("/")
    head = []
    for seg in pattern.split("/"):
        if is_glob(seg):
            break
        head.append(seg)
    return "/".join(head)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def matches(pattern: str, path: str) -> bool:
    if not is_glob(pattern):
        p = pattern.rstrip("/")
        return path == p or path.startswith(p + "/")
    return glob_regex(pattern).match(path) is not None


def overlaps(input_pattern: str, output: str) -> bool:
    """Could a file the output names be read through the input pattern?"""
    if output.endswith("/"):
        out_dir = output.rstrip("/")
        prefix = literal_prefix(input_pattern)
        if prefix == out_dir or prefix.startswith(out_dir + "/"):
            return True  # the input is the directory or inside it
        if is_glob(input_pattern) and (not prefix or out_dir.startswith(prefix + "/")):
            probe = out_dir + "/x"
            return glob_regex(input_pattern).match(probe) is not None or matches(input_pattern, out_dir)
        return not is_glob(input_pattern) and out_dir.startswith(prefix + "/")
    return matches(input_pattern, output)


def expand(root: str, pattern: str, escape_check=True):
    """Files under root matching the pattern, as (relpath, stat_result), sorted.

    A literal path names a file or a whole directory. Symlinks that lead outside
    the root raise ValueError.
    """
    if not is_glob(pattern):
        rel = pattern.rstrip("/")
        full = os.path.join(root, rel)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            return []
        if not _is_dir(st):
            if escape_check and os.path.islink(full):
                _check_link(root, rel)
            return [(rel, st)]
        return sorted(_walk(root, rel, None, escape_check))
    base = literal_prefix(pattern)
    rx = glob_regex(pattern)
    rest = pattern[len(base) + 1 :] if base else pattern
    recursive = "/" in rest.rstrip("/") or "**" in rest
    if not recursive:
        out = []
        try:
            it = os.scandir(os.path.join(root, base) if base else root)
        except (FileNotFoundError, NotADirectoryError):
            return []
        with it:
            for entry in it:
                rel = f"{base}/{entry.name}" if base else entry.name
                if entry.name in SKIP_DIRS or not rx.match(rel):
                    continue
                if entry.is_symlink() and escape_check:
                    _check_link(root, rel)
                st = entry.stat()
                if not _is_dir(st):
                    out.append((rel, st))
        out.sort()
        return out
    return sorted(_walk(root, base, rx, escape_check))


def _walk(root: str, base: str, rx, escape_check: bool):
    stack = [base]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(os.path.join(root, d) if d else root)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                if entry.name in SKIP_DIRS:
                    continue
                rel = f"{d}/{entry.name}" if d else entry.name
                link = entry.is_symlink()
                if link and escape_check:
                    _check_link(root, rel)
                if entry.is_dir():
                    if not link:  # do not follow directory links: no loops
                        stack.append(rel)
                    continue
                if rx is None or rx.match(rel):
                    yield rel, entry.stat()


def _check_link(root: str, rel: str) -> None:
    real = os.path.realpath(os.path.join(root, rel))
    real_root = os.path.realpath(root)
    if not real.startswith(real_root + os.sep):
        raise ValueError(f"{rel} is a symlink that leads outside the project root")


def _is_dir(st) -> bool:
    return (st.st_mode & 0o170000) == 0o040000


def find_root(pipeline_file: str) -> str:
    """The git work tree holding the file, else the file's own directory."""
    d = os.path.dirname(os.path.abspath(pipeline_file))
    probe = d
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            return d
        probe = parent
