"""templates: `${{ dotted.reference }}` only; nothing is evaluated."""

from __future__ import annotations

import pytest

from amelia import templates
from amelia.templates import TemplateSyntaxError, env_name, references, scan, substitute


def test_references_with_offsets():
    text = "Goal: ${{ params.goal }}\nFrom ${{steps.discovery.output}} and ${{  name  }}"
    assert references(text) == [
        ("params.goal", 6),
        ("steps.discovery.output", 30),
        ("name", 62),
    ]


def test_no_templates():
    assert references("plain text, $HOME, ${HOME}, {{ not ours }}") == []
    assert references("") == []


def test_names_may_hold_dashes_and_underscores():
    assert [r for r, _ in references("${{ steps.my-step_2.json.a_b }}")] == ["steps.my-step_2.json.a_b"]


def test_template_spanning_lines():
    assert references("${{\n  params.goal\n}}") == [("params.goal", 0)]


@pytest.mark.parametrize("text", [
    "${{ 1 + 2 }}",
    "${{ params.goal + 'x' }}",
    "${{ __import__('os').system('id') }}",
    "${{ params['goal'] }}",
    "${{ params.goal() }}",
    "${{ params. goal }}",
    "${{ params..goal }}",
    "${{ .goal }}",
    "${{ 9lives }}",
])
def test_code_is_not_a_reference(text):
    with pytest.raises(TemplateSyntaxError) as info:
        references(text)
    assert "is not a reference" in str(info.value)
    assert "no code runs" in info.value.hint
    assert info.value.offset == 0
    assert info.value.source == text


def test_empty_template():
    with pytest.raises(TemplateSyntaxError, match=r"empty template") as info:
        references("a ${{   }} b")
    assert info.value.offset == 2


def test_unclosed_template():
    with pytest.raises(TemplateSyntaxError, match="unclosed template") as info:
        references("ok ${{ params.a }} then ${{ params.b")
    assert info.value.offset == 24
    assert info.value.hint


def test_scan_reports_every_problem_and_keeps_the_good_references():
    refs, errors = scan("${{ a.b }} ${{ 1+1 }} ${{ }} ${{ c }} ${{ d")
    assert refs == [("a.b", 0, "${{ a.b }}"), ("c", 29, "${{ c }}")]
    assert [(str(e), e.offset, e.source) for e in errors] == [
        ("'1+1' is not a reference", 11, "${{ 1+1 }}"),
        ("empty template ${{ }}", 22, "${{ }}"),
        ("unclosed template: '${{' without '}}'", 38, "${{"),
    ]


def test_references_raises_the_first_problem():
    with pytest.raises(TemplateSyntaxError) as info:
        references("${{ x }} ${{ }} ${{ 1 }}")
    assert info.value.offset == 9


def test_substitute():
    values = {"params.goal": "reset", "name": "demo"}
    assert substitute("${{ params.goal }} in ${{name}}!", values.__getitem__) == "reset in demo!"


def test_substitute_does_not_rescan_values():
    """A value holding template syntax stays as it is: one pass, nothing evaluated."""
    out = substitute("${{ a }}", lambda ref: "${{ b }}")
    assert out == "${{ b }}"


@pytest.mark.parametrize("ref, env", [
    ("params.goal", "AMELIA_PARAM_GOAL"),
    ("params.max-tokens", "AMELIA_PARAM_MAX_TOKENS"),
    ("steps.discovery.output", "AMELIA_STEP_DISCOVERY_OUTPUT"),
    ("steps.plan-a.json.items", "AMELIA_STEP_PLAN_A_JSON_ITEMS"),
    ("env.API_URL", "API_URL"),
    ("name", "AMELIA_PIPELINE_NAME"),
    ("context", "AMELIA_CONTEXT"),
])
def test_env_name(ref, env):
    assert env_name(ref) == env


def test_roots():
    assert templates.ROOTS == ("params", "steps", "context", "env", "name", "item")
