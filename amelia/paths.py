"""Project-relative paths: confinement checks, glob matching and fast expansion.

Globs: `*` and `?` stay within one path segment, `**` spans any number of them,
`[abc]` is a class and `[!abc]` (or `[^abc]`) its complement, within a segment.
The store (.amelia) and .git are never matched.
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
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # a leading ']' is a member, as in fnmatch
            j = pattern.find("]", j)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                negate = body[:1] in ("!", "^")  # '^' too, as bash and git accept it
                if negate:
                    body = body[1:]
                body = "".join("\\" + ch if ch in "\\[]^&~|" else ch for ch in body)
                # A class matches one character of a segment, never the separator.
                out.append(f"[^{body}/]" if negate else f"[{body}]")
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
    if not output.endswith("/"):
        return matches(input_pattern, output)
    out_dir = output.rstrip("/")
    if not is_glob(input_pattern):
        p = input_pattern.rstrip("/")
        # the input is the directory, a path inside it, or a directory holding it
        return p == out_dir or p.startswith(out_dir + "/") or out_dir.startswith(p + "/")
    # A glob reads files only (never a directory by name): can it match one below out_dir?
    return _reaches_below(tuple(input_pattern.rstrip("/").split("/")), tuple(out_dir.split("/")))


def _reaches_below(pat: tuple, segs: tuple) -> bool:
    """Can the pattern segments match some path strictly below the directory `segs`?"""
    if not segs:
        return bool(pat)
    if not pat:
        return False
    head = pat[0]
    if head == "**":
        return _reaches_below(pat[1:], segs) or _reaches_below(pat, segs[1:])
    if "**" in head:  # 'a**b' spans segments: anything below a dir starting right may match
        return glob_regex(head.split("**")[0] + "*").match(segs[0]) is not None
    if glob_regex(head).match(segs[0]) is None:
        return False
    return _reaches_below(pat[1:], segs[1:])


def expand(root: str, pattern: str, escape_check=True):
    """Files under root matching the pattern, as (relpath, stat_result), sorted.

    A literal path names a file or a whole directory. Symlinks that lead outside
    the root raise ValueError; symlinked directories inside a walk are not followed,
    and dangling symlinks are skipped.
    """
    if not is_glob(pattern):
        rel = pattern.rstrip("/")
        full = os.path.join(root, rel)
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if escape_check:
            _check_link(root, rel)  # the path itself or a directory on its way may be a link
        if not _is_dir(st):
            return [(rel, st)]
        return sorted(_walk(root, rel, None, escape_check))
    base = literal_prefix(pattern)
    rx = glob_regex(pattern)
    rest = pattern[len(base) + 1 :] if base else pattern
    recursive = "/" in rest.rstrip("/") or "**" in rest
    if base and escape_check and os.path.lexists(os.path.join(root, base)):
        _check_link(root, base)
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
                try:
                    st = entry.stat()
                except (FileNotFoundError, NotADirectoryError):
                    continue  # a dangling symlink
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
                    try:
                        st = entry.stat()
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # a dangling symlink
                    yield rel, st


def _check_link(root: str, rel: str) -> None:
    real = os.path.realpath(os.path.join(root, rel))
    real_root = _real_root(root)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise ValueError(f"{rel} is a symlink that leads outside the project root")


@lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


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
