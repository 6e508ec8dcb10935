"""Resolving grows linearly with the steps (issue 10, item 9): counted in the work done
(overlap tests, look-ups), not in seconds, so that a busy machine cannot make it flaky.
benchmarks/validate/ has the seconds."""

from __future__ import annotations

import sys
from pathlib import Path

from amelia import api, paths

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "validate"))
from generate import write  # noqa: E402


def _work(tmp_path, n: int, monkeypatch) -> int:
    """Overlap tests made while validating a generated pipeline of n steps."""
    calls = 0
    real = paths.overlaps

    def counting(a, b):
        nonlocal calls
        calls += 1
        return real(a, b)

    monkeypatch.setattr(paths, "overlaps", counting)
    pipeline = api.validate(str(write(tmp_path / str(n), n)))
    assert len(pipeline.steps) == n
    return calls


def test_overlap_tests_grow_linearly_with_the_steps(tmp_path, monkeypatch):
    small, large = _work(tmp_path, 300, monkeypatch), _work(tmp_path, 1200, monkeypatch)
    assert large <= 4 * small * 1.2, (small, large)  # quadratic would be 16x


def test_generated_pipeline_has_the_expected_links(tmp_path):
    p = api.validate(str(write(tmp_path, 40)))
    by_id = p.by_id()
    assert by_id["c5"].data_needs == ("c4",)
    assert by_id["join"].data_needs == tuple(sorted(f"f{i}" for i in range(18)))
    assert by_id["last"].data_needs == ("c19",)
    assert by_id["f10"].needs == ("c0",) and by_id["f10"].data_needs == ()
