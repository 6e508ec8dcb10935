"""provider: local, on the real bundled SmolLM2-135M model (small: loads in ~0.5 s)."""

from __future__ import annotations

import json
import threading

import jsonschema
import pytest

pytest.importorskip("xllamacpp")

from amelia.providers import ModelConfig, ProviderError, Request, provider_class  # noqa: E402
from amelia.providers import local  # noqa: E402

try:
    local.default_model_path()
except ProviderError:  # pragma: no cover - the [local] extra is not installed
    pytest.skip("the bundled local model is not installed", allow_module_level=True)


def make(max_tokens=60, temperature=None, model="", env=None, timeout=600.0):
    cfg = ModelConfig(name="default", provider="local", model=model, max_tokens=max_tokens,
                      temperature=temperature, timeout=timeout)
    return local.Provider(cfg, env or {})


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "sights": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["city", "sights"],
    "additionalProperties": False,
}


def test_registered_under_its_name():
    assert provider_class("local") is local.Provider
    assert local.Provider.name == "local"


def test_plain_answer_streams_and_counts_usage():
    p = make(max_tokens=40)
    chunks = []
    c = p.complete(Request(system="You are a helpful assistant.",
                           prompt="Name three fruits."), on_text=chunks.append)
    assert c.text.strip()
    assert len(chunks) > 1 and "".join(chunks) == c.text
    assert c.usage.input_tokens + c.usage.cached_tokens > 5 and 0 < c.usage.output_tokens <= 40
    assert c.model == "SmolLM2-135M-Instruct.Q4_1"
    assert c.stop_reason in ("stop", "length")


def test_same_request_same_answer():
    p = make(max_tokens=30, temperature=0.7)
    r = Request(system="", prompt="Say something about the sea.")
    assert p.complete(r).text == p.complete(r).text


def test_json_schema_answer_is_valid():
    p = make(max_tokens=120)
    chunks = []
    c = p.complete(Request(system="You answer in JSON.",
                           prompt="Describe Paris: its name and some sights.",
                           json_schema=SCHEMA), on_text=chunks.append)
    value = json.loads(c.text)
    jsonschema.validate(value, SCHEMA)
    assert "".join(chunks) == c.text  # schema calls stream too
    assert c.usage.output_tokens > 0 and c.stop_reason == "stop"


def test_json_cut_off_by_max_tokens_is_an_error():
    p = make(max_tokens=3)
    with pytest.raises(ProviderError, match="max_tokens=3") as e:
        p.complete(Request(system="", prompt="Describe Paris.", json_schema=SCHEMA))
    assert not e.value.retryable


def test_prompt_longer_than_the_context_is_an_error_and_the_worker_stays():
    p = make(max_tokens=5)
    p.warm()
    w = local.worker(local.default_model_path())
    with pytest.raises(ProviderError, match="exceeds the available context size") as e:
        p.complete(Request(system="", prompt="word " * (local.N_CTX + 100)))
    assert not e.value.retryable
    assert p.complete(Request(system="", prompt="Hi")).text
    assert local.worker(local.default_model_path()) is w and w.alive()


def test_model_is_loaded_once_per_process():
    a, b = make(max_tokens=5), make(max_tokens=5, model="smollm2")
    a.complete(Request(system="", prompt="Hi"))
    before = local.LOADS
    b.complete(Request(system="", prompt="Hello"))
    assert local.LOADS == before
    assert a._worker() is b._worker()


def test_concurrent_calls_are_serialized(monkeypatch):
    inside = {"now": 0, "peak": 0}
    guard = threading.Lock()
    real = local.Worker.chat

    def counting(self, *args, **kwargs):
        with guard:
            inside["now"] += 1
            inside["peak"] = max(inside["peak"], inside["now"])
        try:
            return real(self, *args, **kwargs)
        finally:
            with guard:
                inside["now"] -= 1

    monkeypatch.setattr(local.Worker, "chat", counting)
    results, errors = [], []

    def work(i):
        try:
            results.append(make(max_tokens=20).complete(
                Request(system="", prompt=f"Count to {i + 3}.")).text)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(results) == 3 and all(results)
    assert inside["peak"] == 1


def test_missing_gguf_path(tmp_path):
    p = make(model="models/nope.gguf", env={"AMELIA_ROOT": str(tmp_path)})
    with pytest.raises(ProviderError) as e:
        p.complete(Request(system="", prompt="hi"))
    assert not e.value.retryable
    assert str(tmp_path / "models" / "nope.gguf") in e.value.message
    assert "not found" in e.value.message


def test_a_file_that_is_not_gguf_is_a_load_error(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"not a model at all")
    p = make(model="m.gguf", env={"AMELIA_ROOT": str(tmp_path)})
    with pytest.raises(ProviderError, match="not a GGUF file") as e:
        p.complete(Request(system="", prompt="hi"))
    assert "cannot load local model" in e.value.message and not e.value.retryable


def test_gguf_path_relative_to_root(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").symlink_to(local.default_model_path())
    p = make(model="models/m.gguf", max_tokens=5, env={"AMELIA_ROOT": str(tmp_path)})
    make(max_tokens=5)._worker()
    before = local.LOADS
    assert p.complete(Request(system="", prompt="Hi")).text
    assert local.LOADS == before  # the same file (through a link) is the same model


def test_unknown_model_name():
    with pytest.raises(ProviderError, match="neither a .gguf file") as e:
        make(model="llama3.2").complete(Request(system="", prompt="hi"))
    assert not e.value.retryable


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ProviderError) as e:
        local.default_model_path()
    assert "pip install 'amelia[local]'" in e.value.message and not e.value.retryable
    with pytest.raises(ProviderError) as e:
        local.check_engine()
    assert "xllamacpp" in e.value.message
    assert "pip install 'amelia[local]'" in e.value.message and not e.value.retryable


def test_history_and_shared_context_reach_the_model():
    msgs = local.messages(Request(system="sys", prompt="fix it", shared_context="CONTEXT",
                                  history=({"role": "user", "content": "q"},
                                           {"role": "assistant", "content": "a"})))
    assert msgs == [{"role": "system", "content": "sys"},
                    {"role": "user", "content": "CONTEXT\n\nq"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "fix it"}]
    msgs = local.messages(Request(system="", prompt="p", shared_context="C",
                                  history=(("assistant", "a"),)))
    assert msgs == [{"role": "user", "content": "C"}, {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "p"}]
    assert local.messages(Request(system="", prompt="p")) == [{"role": "user", "content": "p"}]
