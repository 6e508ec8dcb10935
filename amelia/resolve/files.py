"""Project files read at resolve time (a prompt file, a schema file), and places in them."""

from __future__ import annotations

import hashlib
import os

from ..errors import Location


def read_text_file(root: str, rel: str) -> tuple[str | None, str]:
    """(text, sha256) of a project file, or (None, why)."""
    from .. import paths

    problem = paths.confinement_problem(rel, root)
    if problem:
        return None, f"path '{rel}' {problem}"
    full = os.path.join(root, rel)
    try:
        with open(full, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, f"file '{rel}' does not exist"
    except IsADirectoryError:
        return None, f"'{rel}' is a directory"
    try:
        return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError:
        return None, f"file '{rel}' is not UTF-8 text"


def file_location(file: str, text: str, offset: int, key_path: str = "") -> Location:
    """Where `offset` in a file's text is (a prompt file); key_path names the key that reads it."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    lines = text.splitlines()
    snippet = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(file, line, col, key_path, snippet)
