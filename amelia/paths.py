"""Project-relative paths: confinement checks, glob matching and fast expansion.

Globs: `*` and `?` stay within one path segment, `**` spans any number of them,
`[abc]` is a class and `[!abc]` (or `[^abc]`) its complement, within a segment.
The store (.amelia) and .git are never matched.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache

GLOB_CHARS = frozenset("*?[")
SKIP_DIRS = frozenset((".amelia", ".git"))


def is_glob(pattern: str) -> bool:
    # three substring tests: 6x faster than a set test, and called for every path and pair
    return "*" in pattern or "?" in pattern or "[" in pattern


def normalize(path: str) -> str:
    """'./a//b/' → 'a/b/' (a trailing slash marks a directory and is kept)."""
    trailing = path.endswith("/")
    norm = os.path.normpath(path).replace(os.sep, "/")
    if norm == ".":
        return ""
    return norm + "/" if trailing and not norm.endswith("/") else norm


def lexical_problem(path: str) -> str | None:
    """Why `path`, as written, leaves the project root (or can name no file), else None."""
    if "\0" in path:  # no file name holds one; the OS would refuse it (ValueError)
        return "contains a NUL byte"
    if os.path.isabs(path) or path.startswith("~"):
        return "is an absolute path"
    norm = os.path.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return "leaves the project root ('..')"
    return None


SYMLINK_ESCAPE = "leads outside the project root through a symlink"


def confinement_problem(path: str, root: str, memo: dict | None = None) -> str | None:
    """Why `path` would leave the project root, or None when it stays inside.

    memo: as for real_pattern (one walk per directory when many paths are checked)."""
    problem = lexical_problem(path)
    if problem:
        return problem
    literal = literal_prefix(path)
    if ".." in literal.split("/"):  # resolved as the OS does: a link before '..' first
        real = os.path.realpath(os.path.join(root, literal))
        real_root = _real_root(root)
        return None if real == real_root or real.startswith(real_root + os.sep) else SYMLINK_ESCAPE
    return SYMLINK_ESCAPE if real_pattern(normalize(path), root, memo) is None else None


def literal_text(pattern: str) -> str:
    """The text of a pattern before its first wildcard: every path it matches starts so."""
    cut = [i for i in (pattern.find(c) for c in GLOB_CHARS) if i != -1]
    return pattern[: min(cut)] if cut else pattern


def glob_problem(pattern: str) -> str | None:
    """Why a pattern is not a usable glob (a class range like [z-a]), or None."""
    if not is_glob(pattern):
        return None
    try:
        glob_regex(pattern)
    except re.error as e:
        return f"is not a valid glob: {_class_problem(pattern) or e.msg}"
    return None


def _class_problem(pattern: str) -> str:
    """The first bad `[...]` class of a pattern, said as a person would."""
    for m in re.finditer(r"\[[!^]?\]?[^\]]*\]", pattern):
        body = m.group(0)
        for a, b in re.findall(r"(.)-(.)", body[1:-1]):
            if a > b:
                return f"the range '{a}-{b}' in '{body}' runs backwards"
    return ""


def real_pattern(pattern: str, root: str, memo: dict | None = None) -> str | None:
    """The project-relative form of a normalised path or pattern as it is on disk: the
    symlinks of its literal part resolved (as far as it exists; the rest kept as written,
    a trailing "/" too), so that two names of one file are one (b/x and a/x, b -> a).
    None when a symlink leads it outside the root.

    memo: directory → its real path, shared across calls: a path costs one lstat."""
    base = literal_prefix(pattern)
    if not base:
        return pattern
    real = _real_abs(base, root, {} if memo is None else memo)
    real_root = _real_root(root)
    if real == real_root:
        rel = ""
    elif real.startswith(real_root + os.sep):
        rel = real[len(real_root) + 1:].replace(os.sep, "/")
    else:
        return None
    rest = pattern[len(base):]  # "", "/", or "/" and the glob part
    return rel + rest if rel else rest.lstrip("/")


def _real_abs(rel: str, root: str, memo: dict) -> str:
    """os.path.realpath(root/rel) (rel normalised, no trailing "/"), with the real path
    of each parent directory remembered in memo."""
    parent, _, name = rel.rpartition("/")
    real_parent = memo.get(parent)
    if real_parent is None:
        real_parent = memo[parent] = os.path.realpath(os.path.join(root, parent) if parent else root)
    full = os.path.join(root, rel)
    if os.path.islink(full):
        return os.path.realpath(full)
    return os.path.join(real_parent, name)


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
    if _in_skipped_dir(path) and not _in_skipped_dir(literal_prefix(pattern) + "/"):
        return False  # a wildcard never reaches the store or .git: expand skips them too
    return glob_regex(pattern).match(path) is not None


def _in_skipped_dir(path: str) -> bool:
    return any(path.startswith(d + "/") or f"/{d}/" in path for d in SKIP_DIRS)


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
    return git_top(d) or d


def git_top(folder: str) -> str | None:
    """The nearest folder at or above `folder` holding a `.git` (a folder, or a worktree's
    file): the top of its git work tree, found without running git; None outside one."""
    probe = os.path.abspath(folder)
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent


def file_name(step_id: str) -> str:
    """A file name for a step id: no glob or path characters (`compile[a]`), still unique."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", step_id)
    if safe == step_id:
        return safe
    return f"{safe}-{hashlib.sha256(step_id.encode()).hexdigest()[:8]}"


def ignored_folder(store_dir: str, name: str, what: str) -> str:
    """`<store>/<name>`, made with a .gitignore of its own (`*`) so that the user's
    `git status` never lists what Amelia keeps there, even without the store's."""
    base = os.path.join(os.path.realpath(store_dir), name)
    os.makedirs(base, exist_ok=True)
    ignore = os.path.join(base, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as f:
            f.write(f"# {what}\n*\n")
    return base
