"""SQLite and OS errors of the store, said as StoreProblem: which file, what is wrong, what to do.

A damaged, read-only or full store is the environment's fault, not a bug: it exits 4
with the file's name and a hint, never a traceback (DESIGN §9). One function per source
of error; each names the file relative to the current directory when it lies below it
(`.amelia/state.db`), as the user would type it.
"""

from __future__ import annotations

import errno
import os

from ..errors import Location, StoreProblem

# SQLite's primary result codes (sqlite3.h), as `sqlite_errorcode & 0xff`.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26

IOERR_READS = frozenset((266, 522))  # SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ
NEARLY_FULL = 16 << 20  # bytes free below which a failed write is said as a full disk

FULL_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
READONLY_ERRNOS = frozenset((errno.EACCES, errno.EPERM, errno.EROFS))


def shown(path: str) -> str:
    """The path as the user would type it: relative when it is below the current directory."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def damaged(path: str, what: str) -> StoreProblem:
    p = shown(path)
    return StoreProblem(f"the store's database is damaged ({what})", Location(p),
                        hint=f"move {p} aside and run again: the objects in "
                             f"{shown(os.path.join(os.path.dirname(path), 'objects'))} are kept; the run "
                             "history and cache records are lost, so steps run once more")


def read_only(path: str, what: str) -> StoreProblem:
    store = store_dir(path)
    if os.path.isdir(store):
        d = shown(store)
        hint = f"make {d} and the files in it writable (chmod -R u+w {d})"
    else:  # the store itself could not be made
        hint = (f"make {shown(os.path.dirname(os.path.abspath(store)))} writable: amelia keeps its "
                f"cache and run history in {shown(store)} there")
    return StoreProblem(f"the store cannot be written ({what})", Location(shown(path)), hint=hint)


def disk_full(path: str, what: str) -> StoreProblem:
    d = shown(store_dir(path))
    return StoreProblem(f"the disk is full: the store cannot be written ({what})", Location(shown(path)),
                        hint=f"free disk space where {d} is, then run again "
                             "(`amelia cache gc` drops old records and objects)")


def sqlite_problem(path: str, e: Exception) -> StoreProblem:
    """The StoreProblem for a sqlite3.Error on the database at `path`."""
    import sqlite3

    what = str(e) or type(e).__name__
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or (
            not code and isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)):
        return damaged(path, what)
    if code == SQLITE_FULL:
        return disk_full(path, what)
    if code in (SQLITE_READONLY, SQLITE_PERM) or (code == SQLITE_CANTOPEN and not _writable(path)):
        return read_only(path, what)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreProblem(f"the store's database is locked ({what})", Location(shown(path)),
                            hint="another process holds it: wait for it to finish, then run again")
    if code == SQLITE_IOERR:
        if getattr(e, "sqlite_errorcode", 0) in IOERR_READS:
            return StoreProblem(f"the store's database could not be read ({what})", Location(shown(path)),
                                hint="check the disk (dmesg); if state.db itself is damaged, "
                                     f"move {shown(path)} aside and run again")
        if _nearly_full(path):  # SQLite says ENOSPC as SQLITE_FULL, but not every short write
            return disk_full(path, what)
        # A write that failed otherwise: a file size limit (EFBIG), a quota, a failing disk.
        return StoreProblem(f"the store's database could not be written ({what})", Location(shown(path)),
                            hint="check free disk space (df), file size limits (ulimit -f) and the disk, "
                                 "then run again")
    return StoreProblem(f"the store's database cannot be used ({what})", Location(shown(path)),
                        hint="run again with --debug for details")


def os_problem(path: str, e: OSError) -> StoreProblem:
    """The StoreProblem for an OSError on a file or directory of the store."""
    what = e.strerror or str(e)
    if e.errno in FULL_ERRNOS:
        return disk_full(path, what)
    if e.errno in READONLY_ERRNOS:
        return read_only(path, what)
    return StoreProblem(f"the store cannot be used ({what})", Location(shown(path)),
                        hint="check the disk and the permissions of the project's .amelia directory")


def store_dir(path: str) -> str:
    """The .amelia directory that is or holds `path` (its own directory when none does)."""
    d = os.path.dirname(path) or "."
    up = path
    while up and os.path.basename(up) != ".amelia":
        parent = os.path.dirname(up)
        up = "" if parent == up else parent
    return up or d


def _nearly_full(path: str) -> bool:
    import shutil

    try:
        return shutil.disk_usage(os.path.dirname(path) or ".").free < NEARLY_FULL
    except OSError:
        return False


def _writable(path: str) -> bool:
    """Whether SQLite could create the database, its -wal and -shm at `path`."""
    d = os.path.dirname(path) or "."
    return os.access(d, os.W_OK | os.X_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))
