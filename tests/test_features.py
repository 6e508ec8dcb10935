"""The feature registry: keys the schema takes but this version does not implement fail closed."""

from __future__ import annotations

import dataclasses
import os
import textwrap

import pytest

from amelia import features, resolve, schema
from amelia.errors import ErrorGroup, PipelineError
from amelia.loader import load_bytes
from amelia.spec import COSMETIC_FIELDS

from conftest import CASES


def _resolve(root, text):
    path = os.path.join(str(root), "amelia.yaml")
    text = textwrap.dedent(text)
    with open(path, "w") as f:
        f.write(text)
    loaded = load_bytes(text.encode(), "amelia.yaml")
    assert schema.validate(loaded) == []  # the schema takes it: only the engine refuses
    return resolve.resolve(loaded, path, {}, "digest", (), root=str(root))


def _errors(root, text):
    with pytest.raises((PipelineError, ErrorGroup)) as info:
        _resolve(root, text)
    e = info.value
    return e.errors if isinstance(e, ErrorGroup) else [e]


EVERY_KEY = """\
amelia: 1
sources: {specs: {paths: [docs/]}}
qdrant: {url: "http://localhost:6333"}
agents:
  analyst: {system: hi, sources: [specs]}
targets: {main: {branch: amelia/x}}
steps:
  a:
    agent: {system: hi, sources: [specs]}
    prompt: go
    output: a.md
    context: [{source: specs, query: q}]
    approve: false
  r: {retrieve: {source: specs, query: q}, output: r.json}
"""


def test_every_unavailable_key_is_a_located_error(tmp_path):
    """The RAG keys (sources, qdrant, an agent's sources, context, retrieve) are available
    now: only the others are refused."""
    errs = _errors(tmp_path, EVERY_KEY)
    got = [(e.location.path, e.message) for e in errs]
    assert got == [
        ("steps.a.approve", "'approve' is not available in this version of amelia"),
    ]
    assert all(e.hint and e.location.line for e in errs)


def test_rag_keys_are_available(tmp_path):
    """sources, qdrant, an agent's sources, context and retrieve steps resolve."""
    assert features.available("rag")
    assert features.kind_key("retrieve") is None
    text = """\
        amelia: 1
        sources: {specs: {paths: ["docs/*.md"]}}
        qdrant: {url: "http://localhost:6333"}
        agents:
          analyst: {system: hi, sources: [specs]}
        steps:
          a: {agent: analyst, prompt: go, output: a.md}
          b:
            agent: {system: hi, sources: [specs]}
            prompt: go
            output: b.md
            context: [{source: specs, query: q}]
          r: {retrieve: {source: specs, query: q}, output: r.json}
        """
    ids = [s.id for s in _resolve(tmp_path, text).steps]
    assert sorted(ids) == ["a", "b", "context:a", "context:b", "r", "source:specs"]


def test_the_registry_covers_every_key_in_the_errors():
    paths = {k.path for k in features.unavailable_keys()}
    assert ("steps", features.ANY, "approve") in paths
    assert not {("include",)} & paths
    assert not {("sources",), ("qdrant",), ("steps", features.ANY, "context"), ("targets",),
                ("steps", features.ANY, "target"), ("steps", features.ANY, "git")} & paths
    assert features.kind_key("git") is None
    assert features.kind_key("run") is None and features.kind_key("agent") is None


def test_turning_a_feature_on_in_the_registry_turns_its_errors_off(tmp_path, monkeypatch):
    text = """\
        amelia: 1
        steps:
          a: {run: x, approve: true}
        """
    assert [e.message for e in _errors(tmp_path, text)] == [
        "'approve' is not available in this version of amelia"]
    on = dataclasses.replace(features.FEATURES["approval"], available=True)
    monkeypatch.setitem(features.FEATURES, "approval", on)
    assert [s.id for s in _resolve(tmp_path, text).steps] == ["a"]


def test_each_unavailable_key_has_a_golden_case():
    cases = {p.name for p in CASES.glob("unavailable_*")}
    for key in features.unavailable_keys():
        name = key.kind or key.name
        if key.path[0] in ("agents",) or key.path[-2:] == ("agent", "sources"):
            name = "agent_sources"
        assert f"unavailable_{name}" in cases, key


def test_approve_is_not_cosmetic():
    """It will gate a run: it must never be left out of a step's key, or be ignored."""
    assert "approve" not in COSMETIC_FIELDS


def test_a_step_that_does_two_things_is_one_error_even_if_one_is_unavailable(tmp_path):
    errs = _errors(tmp_path, """\
        amelia: 1
        steps:
          two: {run: x, git: {commit: y}}
        """)
    assert [e.message for e in errs] == ["step 'two' does more than one thing: run and git"]
