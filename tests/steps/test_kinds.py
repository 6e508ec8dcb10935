"""Step kinds as plug-ins: each kind resolves its own part of a step into a typed config,
contributes its key material and declares its models, all through the registry.

The toy kind (tests/fakes/toy_kind.py) is registered with one KINDS entry and nothing
else; the JSON Schema forbids unknown step keys, so these tests also add `toy` to the
schema (monkeypatched): a real kind adds its keys to schemas/amelia.schema.json.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

import fakes.toy_kind as toy
from amelia import api, resolve, schema, steps
from amelia.errors import EnvironmentProblem, ErrorGroup, PipelineError
from amelia.loader import load_bytes
from amelia.model_config import ModelConfig
from amelia.spec import Pipeline
from amelia.steps.agent import AgentConfig
from amelia.steps.run import RunConfig

TOY_PIPELINE = """\
    amelia: 1
    name: toys
    params:
      who: {type: string, default: world}
    steps:
      hello:
        toy: {text: "Hello ${{ params.who }}", times: TIMES}
        output: out/hello.txt
      shout:
        toy: {text: "${{ steps.hello.output }}!"}
        output: out/shout.txt
      count:
        run: wc -l < out/hello.txt > out/count.txt
        inputs: [out/hello.txt]
        output: out/count.txt
    """


TOY_REFS = ("params", "steps", "name")  # its text is a prompt-like template: no env


@pytest.fixture
def toy_kind(monkeypatch):
    """`toy` registered through the registry alone (plus the schema's step keys)."""
    monkeypatch.setitem(steps.KINDS, "toy", steps.Kind("toy", "fakes.toy_kind", (), TOY_REFS))
    patched = copy.deepcopy(schema.load_schema())
    patched["$defs"]["step"]["properties"]["toy"] = {"type": "object"}
    monkeypatch.setattr(schema, "load_schema", lambda: patched)
    toy.MODEL = None
    yield
    toy.MODEL = None


def write(root, text: str, **subs) -> str:
    text = textwrap.dedent(text)
    for k, v in subs.items():
        text = text.replace(k, str(v))
    path = os.path.join(str(root), "amelia.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def resolve_text(root, text: str) -> Pipeline:
    path = write(root, text)
    loaded = load_bytes(textwrap.dedent(text).encode(), "amelia.yaml")
    assert schema.validate(loaded) == []
    return resolve.resolve(loaded, path, {}, "digest", (), root=str(root))


def errors_of(root, text: str) -> list:
    with pytest.raises((PipelineError, ErrorGroup)) as info:
        resolve_text(root, text)
    e = info.value
    return e.errors if isinstance(e, ErrorGroup) else [e]


def run(path: str) -> dict:
    return api.run(api.RunOptions(file=path, jobs=2), out=io.StringIO())


# -- a new kind, end to end ----------------------------------------------------------

def test_a_kind_added_through_the_registry_resolves_plans_and_runs(tmp_path, toy_kind):
    path = write(tmp_path, TOY_PIPELINE, TIMES=2)
    first = run(path)
    assert first["statuses"] == {"hello": "ran", "shout": "ran", "count": "ran"}
    assert (tmp_path / "out/hello.txt").read_text() == "Hello world\nHello world\n"
    assert (tmp_path / "out/shout.txt").read_text() == "Hello world\nHello world\n!\n"
    assert (tmp_path / "out/count.txt").read_text().strip() == "2"

    pipeline, store = api.open_project(path)  # the cached resolution, read back
    store.close()
    hello, shout = pipeline.step("hello"), pipeline.step("shout")
    assert hello.config == toy.ToyConfig("Hello ${{ params.who }}", 2)
    assert shout.needs == ("hello",) and shout.data_needs == ("hello",)  # its reference is a dependency
    assert pipeline.step("count").data_needs == ("hello",)  # it reads what hello writes
    assert hello.static_vars == {"AMELIA_PARAM_WHO": "world"}

    second = run(path)  # nothing changed: every step cached
    assert second["counts"]["cached"] == 3 and second["counts"]["ran"] == 0

    write(tmp_path, TOY_PIPELINE, TIMES=3)  # the kind's config changed: its key did
    third = run(path)
    assert third["statuses"] == {"hello": "ran", "shout": "ran", "count": "ran"}
    assert (tmp_path / "out/count.txt").read_text().strip() == "3"


def test_the_kind_contributes_its_key_material(tmp_path, toy_kind):
    """`times` left out and `times: 1` are one config, so one definition (and key)."""
    written = resolve_text(tmp_path, "amelia: 1\nsteps:\n  a: {toy: {text: hi, times: 1}, output: a.txt}\n")
    default = resolve_text(tmp_path, "amelia: 1\nsteps:\n  a: {toy: {text: hi}, output: a.txt}\n")
    assert written.step("a").definition == default.step("a").definition
    assert json.loads(default.step("a").definition)["toy"] == {"text": "hi", "times": 1}


def test_the_kind_reports_its_errors_with_everyone_elses(tmp_path, toy_kind):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {toy: {text: "hi ${{ params.nope }}", times: 0}, output: a.txt}
          b: {toy: {text: hi}}
          c: {run: "echo ${{ params.nope }}"}
        """)
    got = sorted((e.location.path, e.message) for e in errs)
    assert got == [
        ("steps.a.toy.text", "undefined param 'nope' in 'params.nope'"),
        ("steps.a.toy.times", "toy step 'a': times must be a positive integer"),
        ("steps.b", "toy step 'b' has no `output:` file"),
        ("steps.c.run", "undefined param 'nope' in 'params.nope'"),
    ]


def test_the_kind_declares_its_models_and_their_keys_are_checked(tmp_path, toy_kind, monkeypatch):
    kind = steps.Kind("toy", "fakes.toy_kind", (), TOY_REFS, calls_models=True)
    monkeypatch.setitem(steps.KINDS, "toy", kind)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    toy.MODEL = ModelConfig(name="claude", provider="anthropic")
    path = write(tmp_path, TOY_PIPELINE, TIMES=1)
    with pytest.raises(EnvironmentProblem) as info:
        run(path)
    assert "ANTHROPIC_API_KEY is not set: model 'claude' (anthropic) needs it for steps hello, shout" \
        in info.value.message
    assert not (tmp_path / "out").exists()  # checked before any step ran


def test_a_toy_config_round_trips_through_the_resolve_cache(tmp_path, toy_kind):
    p = resolve_text(tmp_path, textwrap.dedent(TOY_PIPELINE).replace("TIMES", "2"))
    back = Pipeline.from_json(p.to_json())
    assert back == p
    assert isinstance(back.step("hello").config, toy.ToyConfig)


# -- the built-in kinds' typed configs -------------------------------------------------

AGENTS = """\
    amelia: 1
    models:
      claude: {provider: anthropic, model: claude-sonnet-4-5, max_tokens: 100}
    agents:
      analyst: {model: claude, system: "You analyse ${{ params.goal }}.", temperature: 0.5}
    params:
      goal: {default: g}
    steps:
      notes: {run: "echo ${{ params.goal }} > notes.md", output: notes.md}
      plan:
        agent: analyst
        prompt: prompts/plan.md
        schema: {type: object, required: [steps]}
        repairs: 1
        output: plan.json
      local:
        agent: {system: hi}
        prompt: "Read ${{ steps.notes.output }}"
        output: local.md
    """


def test_each_builtin_kind_resolves_into_its_typed_config(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/plan.md").write_text("Plan ${{ params.goal }}.\n")
    p = resolve_text(tmp_path, AGENTS)
    assert p.step("notes").config == RunConfig('echo ${AMELIA_PARAM_GOAL} > notes.md')
    plan = p.step("plan").config
    assert isinstance(plan, AgentConfig) and isinstance(plan.model, ModelConfig)
    assert plan.model.name == "claude" and plan.model.temperature == 0.5  # the persona's
    assert plan.system == "You analyse ${{ params.goal }}." and plan.repairs == 1
    assert plan.prompt == "Plan ${{ params.goal }}.\n"  # the file's text
    assert plan.schema == {"type": "object", "required": ["steps"]}
    assert p.step("local").config.model.provider == "local" and p.step("local").config.repairs == 2
    assert [s for s, _ in p.sources] == ["prompts/plan.md"]  # the file it read
    # models(step) reads the typed config; a run step calls none
    assert steps.models(p.step("plan")) == [plan.model]
    assert steps.models(p.step("notes")) == []
    back = Pipeline.from_json(p.to_json())
    assert back == p and isinstance(back.step("plan").config.model, ModelConfig)


def test_reading_a_cached_resolution_imports_no_kind_until_a_config_is_read(tmp_path):
    """The no-op path reads the cached pipeline but no step's config: no step kind, no
    jsonschema, no provider is imported; reading a config imports that kind only."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/plan.md").write_text("Plan ${{ params.goal }}.\n")
    cached = tmp_path / "pipeline.json"
    cached.write_text(resolve_text(tmp_path, AGENTS).to_json())
    code = textwrap.dedent(f"""\
        import sys
        from amelia.spec import Pipeline
        p = Pipeline.from_json(open({str(cached)!r}).read())
        def loaded():
            return sorted(m for m in sys.modules if m.startswith(("amelia.steps", "amelia.providers",
                          "amelia.resolve", "jsonschema", "amelia.processes")))
        print(loaded())
        p.step("plan").config.model
        print(loaded())
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = out.splitlines()
    assert before == "[]"
    assert after == "['amelia.steps', 'amelia.steps.agent']"


def test_the_resolver_has_no_kind_special_cases():
    """Adding a kind is its module plus a KINDS line: resolve/ never names one."""
    import amelia.resolve as pkg

    here = os.path.dirname(pkg.__file__)
    for name in os.listdir(here):
        if name.endswith(".py"):
            text = open(os.path.join(here, name)).read()
            for kind in ("agent", "run"):
                assert f'== "{kind}"' not in text and f"== '{kind}'" not in text, (name, kind)
            assert "resolve_agents" not in text, name
