"""Content-addressed objects under .amelia/objects: write once, atomically.

A file's object is named by the sha256 of its bytes. A directory output is stored as
a manifest object (JSON: relative path → file hash) named "tree-" + its sha256, so a
directory's identity is one string like a file's. ObjectStore is the local
implementation of the interfaces.ContentStore seam (objects by hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

CHUNK = 1 << 20
TREE_PREFIX = "tree-"
# An output file that is executable is named "x:" + its hash in records and tree
# manifests (git keeps the mode in its trees too); the object itself is the bytes.
EXEC_PREFIX = "x:"
SKIP_DIRS = frozenset((".amelia", ".git"))  # as paths.SKIP_DIRS: never part of a tree


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Restored files get the mode a step's own write would give them, not mkstemp's 0600.
FILE_MODE = 0o666 & ~_umask()
EXEC_MODE = 0o777 & ~_umask()


def object_name(digest: str) -> str:
    """The stored object's name for a digest as records and manifests hold it."""
    return digest[len(EXEC_PREFIX):] if digest.startswith(EXEC_PREFIX) else digest


def with_mode(digest: str, st_mode: int) -> str:
    """The digest of a file's content as an output: marked when it is executable."""
    return EXEC_PREFIX + digest if st_mode & 0o100 else digest


def hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_bytes(manifest: dict[str, str]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def tree_digest(manifest: dict[str, str]) -> str:
    """The identity of a directory: the hash of its manifest (path → file hash)."""
    return TREE_PREFIX + hash_bytes(tree_bytes(manifest))


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCFS: list = []  # [libc.syncfs] once looked up; [None] where there is none


def _syncfs(path: str) -> bool:
    """syncfs(2) on the filesystem holding `path`; False where it is not available."""
    if not _SYNCFS:
        try:
            import ctypes

            _SYNCFS.append(ctypes.CDLL(None, use_errno=True).syncfs)
        except (OSError, AttributeError):
            _SYNCFS.append(None)
    if _SYNCFS[0] is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return _SYNCFS[0](fd) == 0
    finally:
        os.close(fd)


class CorruptObject(Exception):
    """An object's bytes no longer match its name (found while restoring it)."""

    def __init__(self, digest: str):
        super().__init__(f"object {digest[:12]} is corrupt")
        self.digest = digest


def _copy_hashing(inp, out) -> str:
    """Copy one open file to another, flushed; the sha256 of what was copied."""
    h = hashlib.sha256()
    while True:
        block = inp.read(CHUNK)
        if not block:
            break
        h.update(block)
        out.write(block)
    out.flush()
    return h.hexdigest()


def atomic_copy(src: str, dst: str, expect: str | None = None, mode: int = FILE_MODE) -> None:
    """Copy src to dst through a temp file in dst's directory: dst is old or new, never half.

    expect: the sha256 the bytes must have; checked while copying, and a mismatch leaves
    dst untouched and raises CorruptObject (git, ccache and Bazel check content on read)."""
    d = os.path.dirname(dst) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".amelia-tmp-")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            if _copy_hashing(inp, out) != expect and expect is not None:
                raise CorruptObject(expect)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _restore_file(src: str, dst: str, digest: str) -> None:
    """Copy an object to dst, its bytes checked, with the mode its digest says."""
    mode = EXEC_MODE if digest.startswith(EXEC_PREFIX) else FILE_MODE
    atomic_copy(src, dst, object_name(digest), mode)


class ObjectStore:
    def __init__(self, directory: str):
        self.dir = directory

    def path(self, digest: str) -> str:
        name = object_name(digest)
        name = name[len(TREE_PREFIX):] if name.startswith(TREE_PREFIX) else name
        return os.path.join(self.dir, name[:2], name[2:])

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def put_file(self, src: str, digest: str | None = None, durable: bool = True) -> str:
        """Store a file's bytes; returns its hash. The copy is verified while written.

        durable=False skips the fsyncs: the caller makes the object durable later with
        `sync` (several objects at once) before anything refers to it."""
        if digest and self.has(digest):
            return digest
        tmp_dir = os.path.join(self.dir, "tmp")
        os.makedirs(tmp_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                actual = _copy_hashing(inp, out)
                if durable:
                    os.fsync(out.fileno())
            final = self.path(actual)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if os.path.exists(final):
                _unlink(tmp)
            else:
                os.replace(tmp, final)
                if durable:
                    fsync_dir(os.path.dirname(final))
            return actual
        except BaseException:
            _unlink(tmp)
            raise

    def put_bytes(self, data: bytes, durable: bool = True) -> str:
        digest = hash_bytes(data)
        final = self.path(digest)
        if os.path.exists(final):
            return digest
        tmp_dir = os.path.join(self.dir, "tmp")  # not among the objects while it is written
        os.makedirs(tmp_dir, exist_ok=True)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            os.replace(tmp, final)
            if durable:
                fsync_dir(os.path.dirname(final))
        except BaseException:
            _unlink(tmp)
            raise
        return digest

    def put_tree(self, directory: str, file_hashes: dict[str, str] | None = None,
                 durable: bool = True) -> str:
        """Store every file under `directory` and a manifest of them; returns "tree-<sha>"."""
        manifest = {}
        # The same files FileStates.tree hashes: no .git/.amelia, no dangling links.
        for dirpath, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            for name in files:
                full = os.path.join(dirpath, name)
                if name in SKIP_DIRS or not os.path.isfile(full):
                    continue
                rel = os.path.relpath(full, directory).replace(os.sep, "/")
                known = object_name((file_hashes or {}).get(rel) or "") or None
                manifest[rel] = with_mode(self.put_file(full, known, durable), os.stat(full).st_mode)
        return TREE_PREFIX + self.put_bytes(tree_bytes(manifest), durable)

    def sync(self, digests) -> None:
        """Make objects written with durable=False durable. One syncfs(2) of the store's
        filesystem where Linux has it (a batch costs one call); else each file, then each
        directory once (a tree's manifest and its files)."""
        digests = list(digests)
        if not digests or _syncfs(self.dir):
            return
        files = set()
        for digest in digests:
            files.add(self.path(digest))
            if digest.startswith(TREE_PREFIX):
                files.update(self.path(h) for h in self.read_tree(digest).values())
        for path in sorted(files):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for d in sorted({os.path.dirname(f) for f in files}):
            fsync_dir(d)

    def read_bytes(self, digest: str) -> bytes:
        """A file object's bytes, checked against its name (CorruptObject when they differ;
        OSError when it is missing)."""
        name = object_name(digest)
        with open(self.path(name), "rb") as f:
            data = f.read()
        if hash_bytes(data) != name:
            raise CorruptObject(digest)
        return data

    def read_tree(self, digest: str, verify: bool = False) -> dict[str, str]:
        with open(self.path(digest), "rb") as f:
            data = f.read()
        if verify and TREE_PREFIX + hash_bytes(data) != digest:
            raise CorruptObject(digest)
        try:
            return json.loads(data)
        except ValueError:
            raise CorruptObject(digest) from None

    def restore(self, digest: str, dst: str, root: str) -> None:
        """Put the object back at dst (a file, or a directory for a tree), every byte
        checked against its hash, nothing written or removed outside `root`.

        Raises CorruptObject (the caller moves it aside), confine.Escape, or
        IsADirectoryError / NotADirectoryError when the disk holds the other kind."""
        from ..confine import check_dir, check_parent

        if not digest.startswith(TREE_PREFIX):
            check_parent(root, dst)
            if os.path.isdir(dst) and not os.path.islink(dst):
                raise IsADirectoryError(dst)
            _restore_file(self.path(digest), dst, digest)
            return
        manifest = self.read_tree(digest, verify=True)
        if os.path.islink(dst) or os.path.isfile(dst):
            check_parent(root, dst)
            if os.path.isfile(dst) and not os.path.islink(dst):
                raise NotADirectoryError(dst)
        check_dir(root, dst)
        os.makedirs(dst, exist_ok=True)  # an empty directory is an output too
        for rel, h in manifest.items():
            target = os.path.join(dst, rel)
            check_parent(root, target)
            if os.path.islink(target):
                os.unlink(target)  # a link in the tree is replaced, never followed
            elif os.path.isfile(target) and with_mode(hash_file(target), os.stat(target).st_mode) == h:
                continue
            _restore_file(self.path(h), target, h)
        # The directory belongs to the step: files it did not produce go.
        remove_extra(dst, manifest)

    def quarantine(self, digest: str) -> str:
        """Move a corrupt object aside (objects/corrupt/) so it is never served again and
        the next put of the same bytes writes a good copy; returns where it went."""
        dst_dir = os.path.join(self.dir, "corrupt")
        os.makedirs(dst_dir, exist_ok=True)
        dst = os.path.join(dst_dir, digest)
        try:
            os.replace(self.path(digest), dst)
        except FileNotFoundError:
            pass
        return dst

    def can_restore(self, digest: str) -> bool:
        if not self.has(digest):
            return False
        if digest.startswith(TREE_PREFIX):
            try:
                return all(self.has(h) for h in self.read_tree(digest).values())
            except (OSError, ValueError):
                return False
        return True

    def iter_objects(self):
        """(digest, path) of every stored object."""
        if not os.path.isdir(self.dir):
            return
        for prefix in sorted(os.listdir(self.dir)):
            sub = os.path.join(self.dir, prefix)
            if len(prefix) != 2 or not os.path.isdir(sub):
                continue
            for name in sorted(os.listdir(sub)):
                yield prefix + name, os.path.join(sub, name)

    def verify(self) -> list[str]:
        """Digests of objects whose bytes no longer match their name."""
        bad = []
        for digest, path in self.iter_objects():
            if hash_file(path) != digest:
                bad.append(digest)
        return bad

    def remove(self, digest: str) -> None:
        _unlink(self.path(digest))

    def clear(self) -> None:
        """Remove every object."""
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_extra(directory: str, keep: dict) -> None:
    """Remove files under `directory` not named in `keep` (paths relative to it), without
    following links: a link is removed as a file is."""
    for dirpath, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            if name in SKIP_DIRS:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), directory).replace(os.sep, "/")
            if rel not in keep:
                os.unlink(os.path.join(dirpath, name))


def clear_directory(directory: str) -> None:
    """Empty a directory output before its step runs; the directory itself stays.
    Links are removed, never followed; .git and .amelia are never part of an output."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in SKIP_DIRS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
