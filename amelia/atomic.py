"""Writing a file so that a reader, or a crash, sees the old content or the new, never half
(a temp file in the same directory, then a rename)."""

from __future__ import annotations

import os
import tempfile

# The permissions open() would give a new file (mkstemp's are 0600): an agent's output, a
# report or amelia.lock is the user's file like any other. Read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def write_bytes(path: str, data: bytes, durable: bool = False) -> None:
    """durable: fsync before the rename (state others rely on after a crash: a manifest)."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".amelia-tmp-")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: str, text: str, durable: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), durable)
