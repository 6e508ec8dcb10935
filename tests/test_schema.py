"""schema: the JSON Schema file is the format's one definition; errors are all found,
sorted by position, and phrased for people."""

from __future__ import annotations

import json

import jsonschema
import pytest

from amelia import schema
from amelia.loader import load_bytes
from conftest import REPO


def errors_of(text: str):
    return schema.validate(load_bytes(text.encode(), "p.yaml"))


def brief(errors):
    return [(e.location.line, e.location.col, e.location.path, e.message, e.hint) for e in errors]


def test_top_level_schema_is_valid_2020_12():
    path = REPO / "schemas" / "amelia.schema.json"
    doc = json.loads(path.read_text())
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"]
    jsonschema.Draft202012Validator.check_schema(doc)
    assert jsonschema.validators.validator_for(doc) is jsonschema.Draft202012Validator


def test_the_validator_reads_that_file():
    assert schema.load_schema() == json.loads((REPO / "schemas" / "amelia.schema.json").read_text())


def test_every_ref_resolves():
    doc = schema.load_schema()

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        assert ref.startswith("#/$defs/")
        assert ref.split("/")[-1] in doc["$defs"], ref


def test_design_example_is_valid():
    """The example of DESIGN §2, as far as the format goes."""
    text = """\
amelia: 1
name: sdlc
description: Discovery, design and planning for one feature
params:
  goal: {type: string, default: "Add password reset"}
models:
  default: {provider: local}
  claude:  {provider: anthropic, model: claude-sonnet-4-5, temperature: 0, max_tokens: 4096}
  ollama:  {provider: openai, base_url: "http://localhost:11434/v1", model: llama3.2}
sources:
  specs:
    paths: ["docs/**/*.md", "specs/**/*.pdf"]
    exclude: ["**/drafts/**"]
    chunk: {size: 800, overlap: 200}
agents:
  analyst:
    model: default
    system: You are a requirements analyst.
targets:
  plan-branch:
    branch: "amelia/${{ params.slug }}"
    base: main
    commit: "docs: plan for ${{ params.goal }}"
include:
  - recipe: recipes/review.yaml
    as: review
    with: {document: build/plan.md}
steps:
  discovery:
    agent: analyst
    prompt: prompts/discovery.md
    context:
      - {source: specs, query: "${{ params.goal }}", top_k: 5}
    inputs: [README.md]
    output: build/discovery.md
  design:
    agent: {model: claude, system: You are a system architect.}
    prompt: |
      Goal: ${{ params.goal }}
      Findings: ${{ steps.discovery.output }}
    output: build/design.md
  tests:
    run: pytest -q
    inputs: ["src/**/*.py"]
  planning:
    needs: [design, tests]
    agent: analyst
    prompt: prompts/planning.md
    schema: schemas/plan.schema.json
    output: build/plan.json
    target: plan-branch
"""
    assert errors_of(text) == []


def test_minimal_file_is_valid():
    assert errors_of("amelia: 1\nsteps:\n  a: {run: make}\n") == []


def test_all_errors_at_once_sorted_by_position():
    text = """\
steps:
  b:
    run: make
    timeout: soon
  a:
    run: 3
    neds: [b]
amelia: 2
extra: 1
"""
    got = brief(errors_of(text))
    assert got == [
        (4, 5, "steps.b.timeout", "'steps.b.timeout' must be a number, not a string", ""),
        (6, 5, "steps.a.run", "'steps.a.run' must be a string, not a number", ""),
        (7, 5, "steps.a.neds", "unknown key 'neds' in 'steps.a'", "did you mean 'needs'?"),
        (8, 1, "amelia", "'amelia' must be 1", "this version of amelia reads format version 1"),
        (9, 1, "extra", "unknown key 'extra' at the top level",
         "allowed keys: amelia, name, description, root, shell, env, params, params_files, models, "
         "sources, qdrant, agents, targets, include, steps"),
    ]


def test_exact_messages():
    text = """\
amelia: 1
stesp: {}
steps:
  b:
    run: make
    timeout: soon
  a:
    run: 3
    neds: [b]
"""
    assert brief(errors_of(text)) == [
        (2, 1, "stesp", "unknown key 'stesp' at the top level", "did you mean 'steps'?"),
        (6, 5, "steps.b.timeout", "'steps.b.timeout' must be a number, not a string", ""),
        (8, 5, "steps.a.run", "'steps.a.run' must be a string, not a number", ""),
        (9, 5, "steps.a.neds", "unknown key 'neds' in 'steps.a'", "did you mean 'needs'?"),
    ]


def test_missing_keys():
    assert brief(errors_of("name: x\n")) == [
        (1, 1, "", "missing required key 'amelia' at the top level",
         "start the file with `amelia: 1` (the format version)"),
        (1, 1, "", "missing required key 'steps' at the top level",
         "add a `steps:` mapping; each step runs a command or calls an agent "
         "(or declare `sources:` only, to index documents, or `include:` recipes)"),
    ]


def test_empty_file():
    assert brief(errors_of("")) == [(0, 0, "", "the file is empty",
                                     "start with `amelia: 1` and a `steps:` mapping")]


def test_an_empty_mapping_is_not_an_empty_file():
    msgs = [e.message for e in errors_of("{}\n")]
    assert msgs == ["missing required key 'amelia' at the top level",
                    "missing required key 'steps' at the top level"]


def test_unknown_key_without_a_close_match_lists_the_allowed_keys():
    (e,) = errors_of("amelia: 1\nsteps:\n  a: {run: x, zzzzzz: 1}\n")
    assert e.message == "unknown key 'zzzzzz' in 'steps.a'"
    assert e.hint.startswith("allowed keys: description, needs, inputs, output, outputs, run")


def test_enum_with_did_you_mean():
    (e,) = errors_of("amelia: 1\nmodels:\n  m: {provider: antropic}\nsteps:\n  a: {run: x}\n")
    assert (e.location.line, e.location.col) == (3, 7)
    assert e.message == "'models.m.provider' has an unknown value \"antropic\""
    assert e.hint == "did you mean 'anthropic'?"


def test_one_of_reports_the_branch_that_fits():
    (e,) = errors_of("amelia: 1\nsteps:\n  a: {run: x, inputs: [src, 3]}\n")
    assert e.location.path == "steps.a.inputs[1]"
    assert e.message == "'steps.a.inputs[1]' must be a string, not a number"


def test_one_of_mapping_branch():
    (e,) = errors_of("amelia: 1\nagents:\n  x:\n    model: {provider: local, tempreature: 1}\nsteps:\n  a: {run: x}\n")
    assert e.message == "unknown key 'tempreature' in 'agents.x.model'"
    assert e.hint == "did you mean 'temperature'?"
    assert (e.location.line, e.location.col) == (4, 30)


def test_one_of_no_branch_fits_the_type():
    (e,) = errors_of("amelia: 1\nsteps:\n  a: {run: x, needs: 3}\n")
    assert e.message == "'steps.a.needs' must be a string or a list, not a number"


def test_null_value():
    (e,) = errors_of("amelia: 1\nsteps:\n  a:\n")
    assert e.message == "'steps.a' is empty; it must be a mapping"
    assert (e.location.line, e.location.col) == (3, 3)


def test_bad_key_name_points_at_the_key():
    (e,) = errors_of("amelia: 1\nsteps:\n  ok: {run: x}\n  bad name: {run: y}\n")
    assert e.message == "\"bad name\" is not a valid name in 'steps'"
    assert (e.location.line, e.location.col) == (4, 3)
    assert e.hint == "use letters, digits, '_' and '-', starting with a letter or '_'"


def test_bad_pipeline_name():
    (e,) = errors_of("amelia: 1\nname: my pipeline\nsteps:\n  a: {run: x}\n")
    assert e.message == "'name': \"my pipeline\" is not a valid name"
    assert "'.'" in e.hint


def test_duplicate_item_points_at_the_second():
    (e,) = errors_of("amelia: 1\nsteps:\n  a: {run: x}\n  b: {run: y, needs: [a, a]}\n")
    assert e.message == "'steps.b.needs' lists \"a\" twice"
    assert e.location.path == "steps.b.needs[1]"


@pytest.mark.parametrize("snippet, message", [
    ("  a: {run: x, timeout: 0}", "'steps.a.timeout' must be more than 0"),
    ("  a: {run: ''}", "'steps.a.run' must not be empty"),
    ("  a: {run: x, outputs: []}", "'steps.a.outputs' must not be empty"),
])
def test_bounds(snippet, message):
    (e,) = errors_of("amelia: 1\nsteps:\n" + snippet + "\n")
    assert e.message == message


def test_steps_must_not_be_empty():
    (e,) = errors_of("amelia: 1\nsteps: {}\n")
    assert e.message == "'steps' must not be empty"


def test_temperature_range():
    (e,) = errors_of("amelia: 1\nmodels:\n  m: {provider: local, temperature: 3}\nsteps:\n  a: {run: x}\n")
    assert e.message == "'models.m.temperature' must be at most 2"


def test_errors_are_not_repeated():
    errs = errors_of("amelia: 1\nsteps:\n  a: {run: x, nope: 1, nope2: 2}\n")
    assert len({(e.location.path, e.message) for e in errs}) == len(errs)


# -- numbers YAML has and JSON has not; the inlined schema (issue 10) -------------

def test_nan_and_infinity_are_errors_wherever_they_are():
    errs = errors_of("""\
amelia: 1
models:
  m: {provider: local, temperature: .nan}
steps:
  a: {run: x, timeout: .inf}
  b: {run: x, timeout: .NaN}
  c: {run: x, timeout: -.inf}
""")
    assert [(line, path, message) for line, _col, path, message, _hint in brief(errs)] == [
        (3, "models.m.temperature", "'models.m.temperature' is not a number (.nan)"),
        (5, "steps.a.timeout", "'steps.a.timeout' is infinite"),
        (6, "steps.b.timeout", "'steps.b.timeout' is not a number (.nan)"),
        (7, "steps.c.timeout", "'steps.c.timeout' must be more than 0"),  # said once
    ]


def test_the_inlined_schema_has_the_rules_of_the_file():
    """Validation runs on the schema with its $refs inlined (speed); on valid and invalid
    documents it finds exactly what the file's own schema finds."""
    inlined = schema._inlined()
    assert "$ref" not in json.dumps(inlined) and "$defs" not in inlined
    plain = jsonschema.Draft202012Validator(schema.load_schema())
    fast = jsonschema.Draft202012Validator(inlined)
    for case in sorted((REPO / "tests" / "cases").glob("*/amelia.yaml")):
        try:
            data = load_bytes(case.read_bytes(), "amelia.yaml").data
        except Exception:
            continue  # a YAML error: no data to validate
        found = sorted((list(e.absolute_path), e.message) for e in plain.iter_errors(data))
        assert sorted((list(e.absolute_path), e.message) for e in fast.iter_errors(data)) == found, case
