"""Resolving a pipeline text in a test's folder, as the resolver tests need it (schema
checked first, so a test never resolves a file the schema would refuse)."""

from __future__ import annotations

import os
import textwrap

from amelia import resolve, schema
from amelia.loader import load_bytes


def resolved(root, text: str, overrides=None, sources=(("amelia.yaml", "x"),), placeholders=False):
    path = os.path.join(str(root), "amelia.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    with open(path, "rb") as f:
        loaded = load_bytes(f.read(), "amelia.yaml")
    assert [e.render() for e in schema.validate(loaded)] == []
    return resolve.resolve(loaded, path, overrides or {}, "digest", tuple(sources), root=str(root),
                           placeholders=placeholders)


def touch(root, *rels, text=None):
    """Files with some content each (their own name, unless `text` is given)."""
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel if text is None else text.format(rel=rel))
