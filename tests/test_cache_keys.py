"""keys: the one definition of a step's cache key, and the pinned keys of a fixture.

If test_pinned_keys fails, what a cache key covers has changed: every user's cached
results would silently stop matching (or, worse, keep matching when they should not).
Bump keys.CACHE_FORMAT_VERSION and put the new keys, with the new version, in PINNED.
"""

from __future__ import annotations

import json
import os
import textwrap

from amelia import fingerprint as fingerprint_module
from amelia import keys, resolve, schema, spec
from amelia.fingerprint import FileStates, fingerprint
from amelia.keys import CACHE_FORMAT_VERSION, cache_key, key_material
from amelia.loader import load_bytes
from amelia.model_config import ModelConfig

PIPELINE = textwrap.dedent("""\
    amelia: 1
    name: keys
    params:
      goal: {type: string, default: Add password reset}
      level: {type: integer, default: 2}
    models:
      default: {provider: local}
      claude: {provider: anthropic, model: claude-sonnet-4-5, temperature: 0, max_tokens: 4096,
               timeout: 30, retries: 1, concurrency: 2}
    agents:
      analyst:
        model: claude
        system: "You are a requirements analyst for ${{ params.goal }}."
        temperature: 0.2
    env: [TOKEN]
    steps:
      build:
        description: builds it
        run: make -C src LEVEL=${{ params.level }} TOKEN="${{ env.TOKEN }}"
        inputs: ["src/*.c", src/config.h]
        output: build/app
        timeout: 60
      docs:
        run: make docs
        inputs: [docs/]
        outputs: [build/docs/]
      plan:
        needs: [docs]
        agent: analyst
        prompt: prompts/plan.md
        schema: schemas/plan.json
        repairs: 1
        inputs: [notes.md]
        output: build/plan.json
      review:
        agent: {model: {provider: openai, base_url: "http://localhost:11434/v1", model: llama3.2},
                system: You review plans.}
        prompt: "Review ${{ steps.plan.output }} for ${{ params.goal }}."
        output: build/review.md
    """)

FILES = {
    "src/main.c": "int main(void) { return 0; }\n",
    "src/util.c": "int util;\n",
    "src/config.h": "#define LEVEL 2\n",
    "docs/a.md": "# A\n",
    "notes.md": "Users forget passwords.\n",
    "prompts/plan.md": "Plan ${{ params.goal }} from ${{ steps.build.output }}.\n",
    "schemas/plan.json": json.dumps({"type": "object", "required": ["steps"],
                                     "properties": {"steps": {"type": "array", "items": {"type": "string"}}}}),
}

# The recorded output hashes of upstream steps, as the store would give them.
UPSTREAM = {
    "build": {"build/app": "a" * 64},
    "docs": {"build/docs/": "d" * 64},
    "plan": {"build/plan.json": "p" * 64},
}

# The keys of the fixture, and the CACHE_FORMAT_VERSION they were computed under
# (version 2: executable outputs are marked in records; the definitions are as before:
# no key of the fixture moved for any other reason, shell/always/params/foreach included).
PINNED = {
    "version": 2,
    "keys": {
        "build": "87dea072ce6dcf380a70f2431d59c466f2706e2a79242b0afc596ddb6f5266f5",
        "docs": "dabd34419deb35ca3e4fb64bf7daad4e0c74bc42e7c0cf1a222d89459b363f1b",
        "plan": "e6c1c99992108b0f6f4815f7a1d966a876604b1493d3ae573304bbf9affa04c1",
        "review": "b51965cd51e53ce6f5345b8b7f91c47cdb6a0063bdfd2be5808da4bfeb1f057f",
    },
}


def write_fixture(root) -> None:
    for rel, text in {**FILES, "amelia.yaml": PIPELINE}.items():
        full = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)


def _resolved(root, write: bool = True):
    if write:
        write_fixture(root)
    loaded = load_bytes(PIPELINE.encode(), "amelia.yaml")
    assert schema.validate(loaded) == []
    return resolve.resolve(loaded, os.path.join(str(root), "amelia.yaml"), {}, "digest", (), root=str(root))


def _keys(root, write: bool = True) -> dict:
    pipeline = _resolved(root, write)
    states = FileStates(str(root), {})
    out = {}
    for step in pipeline.steps:
        fp = fingerprint(step, states, pipeline)
        out[step.id] = cache_key(key_material(pipeline, step, fp, {d: UPSTREAM[d] for d in step.data_needs}))
    return out


def test_pinned_keys(tmp_path):
    got = _keys(tmp_path)
    if PINNED["version"] != CACHE_FORMAT_VERSION:
        raise AssertionError(
            f"CACHE_FORMAT_VERSION is {CACHE_FORMAT_VERSION} but the pinned keys were computed under "
            f"{PINNED['version']}: update PINNED in tests/test_cache_keys.py to these keys and version "
            f"{CACHE_FORMAT_VERSION}:\n{json.dumps(got, indent=4)}")
    changed = {sid: (PINNED["keys"].get(sid), key) for sid, key in got.items() if PINNED["keys"].get(sid) != key}
    assert not changed, (
        "the cache key changed: bump CACHE_FORMAT_VERSION and update the pinned keys "
        f"(PINNED in tests/test_cache_keys.py); pinned → now: {json.dumps(changed, indent=4)}")


def test_the_key_is_defined_once():
    """keys.py is the one place a key is made; spec re-exports its constants."""
    assert not hasattr(fingerprint_module, "key_material") and not hasattr(fingerprint_module, "cache_key")
    assert spec.CACHE_FORMAT_VERSION == keys.CACHE_FORMAT_VERSION
    assert spec.COSMETIC_FIELDS is keys.COSMETIC_FIELDS
    assert spec.canonical_json is keys.canonical_json


def test_cosmetic_fields_stay_out_of_the_definition(tmp_path):
    pipeline = _resolved(tmp_path)
    build = json.loads(pipeline.step("build").definition)
    assert not set(keys.COSMETIC_FIELDS) & set(build)
    assert build["static_vars"] == {"AMELIA_PARAM_LEVEL": "2"}  # param values it reads
    assert "output" not in build and build["outputs"] == ["build/app"]


def test_an_agent_definition_holds_what_changes_the_answer(tmp_path):
    plan = json.loads(_resolved(tmp_path).step("plan").definition)
    agent = plan["agent"]
    assert agent["model"] == {"provider": "anthropic", "model": "claude-sonnet-4-5", "base_url": None,
                              "temperature": 0.2, "max_tokens": 4096}  # the persona's temperature wins
    assert agent["prompt"].startswith("Plan ${{ params.goal }}")  # the file's text, not its name
    assert agent["schema"]["required"] == ["steps"]
    assert agent["system"].startswith("You are a requirements analyst")
    assert agent["repairs"] == 1
    assert "model" not in plan and "schema" not in plan


def test_each_kind_contributes_its_material_through_the_registry(tmp_path):
    """keys.py owns the definition; the kind's `key_material` hook gives its own part."""
    from amelia import steps

    pipeline = _resolved(tmp_path)
    plan = pipeline.step("plan")
    material, replaces = steps.key_material("agent", plan.config)
    assert set(material) == {"agent"} and replaces == ("model", "schema", "context")
    assert json.loads(plan.definition)["agent"] == material["agent"]
    # its command is as written; the default shell adds nothing (a `shell:` as resolved would)
    assert steps.key_material("run", pipeline.step("build").config) == ({}, ("shell",))


def test_model_material_leaves_out_how_a_call_is_made():
    a = ModelConfig(name="a", provider="anthropic", model="m", timeout=5, retries=0, concurrency=1,
                    api_key_env="MY_KEY")
    b = ModelConfig(name="b", provider="anthropic", model="m")
    assert keys.model_material(a) == keys.model_material(b) == a.key_material()
    assert keys.model_material(a) == keys.model_material({**a.__dict__})


def test_keys_differ_between_steps_and_change_with_an_input(tmp_path):
    before = _keys(tmp_path)
    assert len(set(before.values())) == len(before)
    (tmp_path / "notes.md").write_text("Users forget passwords often.\n")
    after = _keys(tmp_path, write=False)
    assert after["plan"] != before["plan"]
    assert after["build"] == before["build"]
