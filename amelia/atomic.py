"""Writing a file so that a reader, or a crash, sees the old content or the new, never half
(a temp file in the same directory, then a rename)."""

from __future__ import annotations

import os
import tempfile


def write_bytes(path: str, data: bytes, durable: bool = False) -> None:
    """durable: fsync before the rename (state others rely on after a crash: a manifest)."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".amelia-tmp-")
    try:
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
