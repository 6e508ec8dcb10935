"""A record's input hashes (path → hash), stored once per distinct set and shared in chunks.

A step over a 30,000-file glob has 30,000 input hashes in its key material; stored in
each record, they made state.db grow by ~2.7 MB a run (issue 10, item 11). Here a set
is cut into chunks at content-defined boundaries (after a path whose crc32 is 0 mod
CHUNK_SPREAD, so the cuts depend on the paths alone: a changed hash touches one chunk,
an added or removed path one or two), each chunk is stored once under the sha256 of its
bytes (zlib-compressed), and the set is the list of its chunk hashes, stored once under
the hash of that list. A record names its set. Ten runs with one file changed between
them store one set and ten chunk lists plus ten chunks, not ten copies (git's trees do
the same for directories).

Tables (state.db, schema 4): input_chunks(hash BLOB, data BLOB), input_sets(hash TEXT,
chunks BLOB: the chunk hashes, 32 bytes each, in path order).
"""

from __future__ import annotations

import hashlib
import json
import zlib

CHUNK_SPREAD = 128  # entries per chunk on average
LEVEL = 1  # zlib: hex hashes compress ~2x at any level; 1 is the fastest
MAX_CHUNK = 1024  # cut here even without a boundary (paths chosen to avoid them)
DIGEST = 32  # bytes of a chunk hash


def is_input_map(value) -> bool:
    """Whether `value` is the kind of input map stored as a set: {str: str | None}."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items())


def chunks(inputs: dict) -> list[tuple[bytes, bytes]]:
    """(sha256, JSON bytes) of each chunk of `inputs`, in path order."""
    out = []
    part: list = []
    for path in sorted(inputs):
        part.append((path, inputs[path]))
        if zlib.crc32(path.encode("utf-8", "surrogatepass")) % CHUNK_SPREAD == 0 or len(part) >= MAX_CHUNK:
            out.append(_chunk(part))
            part = []
    if part or not out:
        out.append(_chunk(part))
    return out


def _chunk(pairs: list) -> tuple[bytes, bytes]:
    data = json.dumps(pairs, separators=(",", ":")).encode()  # ASCII: \u escapes
    return hashlib.sha256(data).digest(), data


def set_hash(chunk_hashes: list[bytes]) -> str:
    """The set's name: the sha256 of its chunk list (a Merkle root over the chunks)."""
    return hashlib.sha256(b"".join(chunk_hashes)).hexdigest()


def save(conn, inputs: dict) -> str:
    """Store the set (the chunks not stored yet) inside the caller's transaction; its hash."""
    parts = chunks(inputs)
    hashes = [h for h, _ in parts]
    name = set_hash(hashes)
    if conn.execute("SELECT 1 FROM input_sets WHERE hash=?", (name,)).fetchone():
        return name
    have = set()
    for i in range(0, len(hashes), 500):
        batch = hashes[i:i + 500]
        have.update(r[0] for r in conn.execute(
            f"SELECT hash FROM input_chunks WHERE hash IN ({','.join('?' * len(batch))})", batch))
    new = {h: data for h, data in parts if h not in have}
    conn.executemany("INSERT OR IGNORE INTO input_chunks VALUES (?,?)",
                     [(h, zlib.compress(data, LEVEL)) for h, data in new.items()])
    conn.execute("INSERT OR IGNORE INTO input_sets VALUES (?,?)", (name, b"".join(hashes)))
    return name


def load(conn, name: str) -> dict | None:
    """The set named `name` as path → hash (in path order); None when it is not stored."""
    row = conn.execute("SELECT chunks FROM input_sets WHERE hash=?", (name,)).fetchone()
    if row is None:
        return None
    blob = bytes(row[0])
    hashes = [blob[i:i + DIGEST] for i in range(0, len(blob), DIGEST)]
    data: dict = {}
    for i in range(0, len(hashes), 500):
        batch = hashes[i:i + 500]
        data.update((bytes(h), d) for h, d in conn.execute(
            f"SELECT hash, data FROM input_chunks WHERE hash IN ({','.join('?' * len(batch))})", batch))
    out: dict = {}
    for h in hashes:
        if h not in data:
            return None  # a chunk lost: the set is not known (only reasons read it)
        out.update(json.loads(zlib.decompress(data[h])))
    return out


def sweep(conn) -> None:
    """Drop the sets no record names and the chunks no set lists (after records are deleted)."""
    conn.execute("DELETE FROM input_sets WHERE hash NOT IN "
                 "(SELECT inputs FROM records WHERE inputs IS NOT NULL)")
    live = set()
    for (blob,) in conn.execute("SELECT chunks FROM input_sets"):
        blob = bytes(blob)
        live.update(blob[i:i + DIGEST] for i in range(0, len(blob), DIGEST))
    dead = [(h,) for (h,) in conn.execute("SELECT hash FROM input_chunks") if bytes(h) not in live]
    conn.executemany("DELETE FROM input_chunks WHERE hash=?", dead)
