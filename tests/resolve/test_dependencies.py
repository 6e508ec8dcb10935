"""resolve.dependencies.OutputIndex: the same writers as checking every output."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

from amelia import paths
from amelia.resolve.dependencies import OutputIndex

NAMES = ["a", "b", "c.txt", "d.md"]


def _outputs(rng, n):
    out = set()
    while len(out) < n:
        depth = rng.randint(1, 3)
        p = "/".join(rng.choice(NAMES) for _ in range(depth))
        out.add(p + ("/" if rng.random() < 0.3 else ""))
    return sorted(out)


def test_index_finds_exactly_what_a_full_scan_finds():
    rng = random.Random(7)
    patterns = ["a", "a/", "a/b", "a/c.txt", "b/*", "**/*.md", "a/**", "c.txt", "*/b/d.md", "d.md/a",
                "a*", "a/b*", "*", "a/[bc]*", "c.t?t", "a/b/*", "b/a/**", "[ab]/c.txt", "d.md/**/a"]
    for _ in range(200):
        outs = _outputs(rng, 6)
        steps = {f"s{i}": SimpleNamespace(id=f"s{i}", outputs=(o,)) for i, o in enumerate(outs)}
        index = OutputIndex(steps)
        for pattern in patterns + outs:
            brute = [o for o in outs if paths.overlaps(pattern, o)]
            assert sorted(e[2] for e in index.writers(pattern)) == brute, (pattern, outs)


def test_index_keeps_file_order_positions():
    steps = {"x": SimpleNamespace(id="x", outputs=("gen/", "z.txt")),
             "y": SimpleNamespace(id="y", outputs=("gen2/a",))}
    index = OutputIndex(steps)
    assert [(p, s.id, o) for p, s, o in index.writers("gen/deep/file")] == [(0, "x", "gen/")]
    assert [e[0] for e in itertools.chain(index.writers("z.txt"), index.writers("gen2"))] == [1, 2]
