"""Names that reach git: branches, tags, bases, remotes, targets. Pure; standard library only.

A name comes from the pipeline file (after its templates are rendered), so possibly from
a model's output: it is checked here before git sees it, and passed after
`--end-of-options` besides. Each function returns None for a good name, else a short
message for the user ("starts with '-', which git would read as an option").

The ref rules are git's `check-ref-format` (and `--branch`), plus Amelia's: not empty,
no leading '-', a length cap (one ref is one file under .git/refs/).
"""

from __future__ import annotations

import re

MAX_REF = 200  # bytes; a ref is a path under .git/refs and file names stop at 255
MAX_REMOTE = 100
MAX_TARGET = 64

_FORBIDDEN = set(" ~^:?*[\\")  # check-ref-format rules 4, 5 and 10
_SUFFIX = re.compile(r"(?:[~^][0-9]*)+$")  # main~2, v1^, HEAD^^
_HEX = re.compile(r"[0-9a-fA-F]{4,64}")
_TARGET = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REMOTE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def _shown(ch: str) -> str:
    return repr(ch) if ch.isprintable() and ch != " " else f"U+{ord(ch):04X}"


def _common(name: str, cap: int) -> str | None:
    """Checks every kind of name shares: type, empty, option-like, size, control chars."""
    if not isinstance(name, str):
        return "is not a string"
    if not name:
        return "is empty"
    if name.startswith("-"):
        return "starts with '-', which git would read as an option"
    if len(name.encode("utf-8", "surrogatepass")) > cap:
        return f"is longer than {cap} bytes"
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"contains a control character ({_shown(ch)})"
    return None


def ref_problem(name: str) -> str | None:
    """A branch or tag name as the user writes it (`feature/x`, `v1.2`), or None if git and
    Amelia both accept it."""
    problem = _common(name, MAX_REF)
    if problem:
        return problem
    for ch in name:
        if ch in _FORBIDDEN:
            return f"contains {_shown(ch)}, which git does not allow in a branch or tag name"
    if name.startswith("/"):
        return "starts with '/' (an absolute path, not a name)"
    if name.endswith("/"):
        return "ends with '/'"
    if "//" in name:
        return "contains '//'"
    if ".." in name:
        return "contains '..'"
    if "@{" in name:
        return "contains '@{'"
    if name == "@":
        return "is '@', which git reads as HEAD"
    if name == "HEAD":
        return "is 'HEAD', which git reserves"
    if name.endswith("."):
        return "ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"has a part starting with '.' ({part!r})"
        if part.endswith(".lock"):
            return f"has a part ending with '.lock' ({part!r})"
    return None


def base_problem(base: str) -> str | None:
    """What a target's branch starts from: a branch, tag or commit id, optionally with
    `~N`/`^N` (`main`, `origin/main`, `v1.0`, `HEAD~1`, a sha). No ranges, reflogs or
    `:path` forms."""
    problem = _common(base, MAX_REF)
    if problem:
        return problem
    stem = _SUFFIX.sub("", base)
    if not stem:
        return "has no branch, tag or commit before '~' or '^'"
    if stem == "HEAD" or _HEX.fullmatch(stem):
        return None
    return ref_problem(stem)


def remote_problem(name: str) -> str | None:
    """A remote's name as `git remote` lists it (`origin`), never a URL."""
    problem = _common(name, MAX_REMOTE)
    if problem:
        return problem
    if "://" in name or ":" in name:
        return "looks like a URL; name a remote (as `git remote` lists them) instead"
    if not _REMOTE.fullmatch(name):
        bad = next((c for c in name if not (c.isascii() and (c.isalnum() or c in "_./-"))), "")
        if bad:
            return f"contains {_shown(bad)}; a remote name uses letters, digits, '_', '.', '-', '/'"
        return "must start with a letter, a digit or '_'"
    # git's own rule: refs/remotes/<name>/x must be a valid ref
    problem = ref_problem(name)
    return problem


def target_name_problem(name: str) -> str | None:
    """A target's name: it becomes a folder under .amelia/worktrees/."""
    problem = _common(name, MAX_TARGET)
    if problem:
        return problem
    if not _TARGET.fullmatch(name):
        return "must be a letter or '_' followed by letters, digits, '_' or '-'"
    return None


def path_problem(path: str) -> str | None:
    """A path to commit, relative to a worktree: no absolute path, no '..', nothing in .git."""
    problem = _common(path, 4096)
    if problem:
        return problem
    if path.startswith("/") or path.startswith("\\"):
        return "is an absolute path; give it relative to the project"
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return "names the whole worktree, not a file or folder in it"
    if ".." in parts:
        return "contains '..', which leads out of the worktree"
    if any(p.lower() == ".git" for p in parts):
        return "is inside .git"
    return None


AUTHOR = re.compile(r"([^<>\x00-\x1f\x7f]+?) <([^<>\s\x00-\x1f\x7f]+)>")


def author_problem(author: str) -> str | None:
    """Why `author:` is not "Name <email>" (what git takes as an identity), else None."""
    if not AUTHOR.fullmatch(author):
        return "is not \"Name <email>\""
    return None
