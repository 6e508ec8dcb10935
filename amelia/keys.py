"""The one definition of a step's cache key (DESIGN §3).

A key is sha256 over the canonical JSON of a step's key material: the cache format
version, the step's kind and normalised definition (its fields minus COSMETIC_FIELDS,
paths normalised, the param values it reads, and its kind's own material: for an agent
the persona, the model's settings and the prompt and schema texts), the content hash of
each input, the recorded output hashes of each upstream step it reads, and the names
(never the values) of the env vars it may read.

Everything that decides what a key covers is here, except each kind's own material,
which the kind contributes through its `key_material` hook (steps registry) from its
resolved config. Resolve calls `definition` when it builds a step, the planner calls
`key_material` and `cache_key`. Changing what any of them produce for the same pipeline
changes keys: bump CACHE_FORMAT_VERSION then, and update the pinned keys in
tests/test_cache_keys.py.

No I/O; no imports from the rest of amelia at import time (spec re-exports from here).
"""

from __future__ import annotations

import hashlib
import json

# Bump when the meaning of a cache key changes: every step then re-runs once.
# (2: an executable output's digest is marked "x:" in records and tree manifests; a
# record of version 1 would restore it without its execute bit.)
CACHE_FORMAT_VERSION = 2

# Fields of a step that change nothing it produces; they stay out of its cache key.
# (`approve` is not one: it gates a run. `needs` is ordering only; data edges are in
# the key through inputs and references. `always` says when to run, not what is made.)
COSMETIC_FIELDS = ("description", "needs", "timeout", "always")

# Fields whose meaning enters the key as values, in `static_vars`, not as written: the
# param leaves a step lists (`params:`) and the item of a foreach instance. So reordering
# the list, or adding an item to a foreach, changes no other step's (or instance's) key.
VALUE_FIELDS = ("params", "foreach")

# The settings of a model that change its answers. Never the API key, nor how a call
# is made (timeout, retries, concurrency).
MODEL_KEY_FIELDS = ("provider", "model", "base_url", "temperature", "max_tokens")


def canonical_json(value) -> str:
    """The one encoding that is hashed: sorted keys, no whitespace, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def model_material(model) -> dict:
    """What of a model's settings changes an answer: a ModelConfig or its asdict()."""
    get = model.get if isinstance(model, dict) else lambda k: getattr(model, k)
    return {k: get(k) for k in MODEL_KEY_FIELDS}


def definition(kind: str, data: dict, inputs, outputs, static_vars: dict, config) -> str:
    """A step's normalised definition, as the canonical JSON that goes into its key.

    data: the step's mapping as written; inputs/outputs: normalised paths; static_vars:
    env name → value of each param (or name) the step reads; config: what its kind
    resolved (its typed CONFIG), whose `key_material` hook gives the kind's part: entries
    that stand in for the fields as written that the kind names in KEY_REPLACES.
    """
    from . import steps

    material, replaces = steps.key_material(kind, config)
    d = {k: v for k, v in data.items()
         if k not in COSMETIC_FIELDS and k not in replaces and k not in VALUE_FIELDS}
    d["inputs"] = list(inputs)
    d.pop("output", None)
    d["outputs"] = list(outputs)
    d["static_vars"] = static_vars  # param values the step reads
    d.update(material)
    return canonical_json(d)


# -- the key -----------------------------------------------------------------------------

def key_material(pipeline, step, fp, upstream: dict) -> dict:
    """Everything that can change the step's result (DESIGN §3), as plain data.

    fp: the step's fingerprint.Fingerprint; upstream: step id → {output path: hash}
    for every step in step.data_needs.
    """
    inputs = {}
    for path, digest in fp.inputs.items():
        if digest is None:
            digest = upstream[fp.produced_by[path]].get(path)
        inputs[path] = digest
    material = {
        "v": CACHE_FORMAT_VERSION,
        "kind": step.kind,
        "definition": step.definition,
        "inputs": inputs,
        "upstream": {d: upstream[d] for d in step.data_needs},
        "env_names": sorted(v.env for v in step.vars if v.ref.startswith("env.")),
    }
    if fp.discovered:  # a depfile's files, by hash (absent for other steps: their keys stay)
        material["discovered"] = dict(fp.discovered)
    return material


def cache_key(material: dict) -> str:
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()
