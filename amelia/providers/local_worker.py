"""The local model's worker: llama.cpp (xllamacpp) on one GGUF file, in a process of its own.

A crash in native code (a segfault in llama.cpp, an illegal instruction on an old CPU)
then ends this process, not amelia: `local.py` reports it as a failed step.

Started by `local.Worker` as `python -P local_worker.py PARENT_PID`; it imports nothing of
amelia (only the standard library and xllamacpp), so it starts fast and no module
of the project directory can shadow one it needs. It speaks JSON lines:

    → {"op": "load", "model": PATH, "n_ctx": N}
    ← {"ok": true}                                  or {"error": TEXT}
    → {"op": "chat", "body": {...}}                 an OpenAI-style chat request, streamed
    ← {"text": TEXT} ...                            the answer as it comes
    ← {"done": true, "finish": REASON, "usage": {...}}   or {"error": TEXT, "kind": KIND}

It exits when its standard input closes, and on its own within a quarter second when
the process that started it is gone (even killed with -9): it never outlives the run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time

# Tests set this to "load" or "chat" to make the worker kill itself with SIGSEGV at
# that point, as a crashing llama.cpp build does (tests/providers/test_local_worker.py).
CRASH_ENV = "AMELIA_TEST_LOCAL_WORKER_CRASH"
GGUF_MAGIC = b"GGUF"
WATCH_EVERY = 0.25  # seconds between checks that the parent still lives


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone: its death reparents us (getppid changes).
    A thread, not PR_SET_PDEATHSIG: that fires when the *thread* that started us ends,
    and amelia starts workers from step threads that come and go."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(WATCH_EVERY)


def _crash_if_asked(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)


class Channel:
    """The protocol's output: the original stdout, kept for JSON lines alone."""

    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)  # whatever native code prints goes to stderr, never into the protocol
        self.broken = False

    def send(self, message: dict) -> bool:
        if self.broken:
            return False
        try:
            self._out.write(json.dumps(message) + "\n")
            self._out.flush()
            return True
        except (OSError, ValueError):  # the parent went away mid-answer
            self.broken = True
            return False


def _check_gguf(path: str) -> str | None:
    """Why llama.cpp could not load `path`, as far as we can tell without it."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if magic != GGUF_MAGIC:
        return "not a GGUF file (it does not start with 'GGUF')"
    return None


def load(message: dict):
    """The llama.cpp server for the model, or an error text."""
    path = str(message["model"])
    problem = _check_gguf(path)
    if problem:
        return None, problem
    # llama.cpp's OpenMP threads spin while they wait; on a busy machine (tests, other
    # steps, other workers) spinning threads starve each other: 40 tokens took 6-14 s
    # instead of 0.8 s on 2 shared cores. Passive waiting costs nothing measurable alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp
    except ImportError as e:
        return None, f"xllamacpp is not installed ({e})"
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = int(message.get("n_ctx") or 4096)
    params.n_parallel = 1
    params.verbosity = -1  # quiet: errors reach us as return values
    params.warmup = False  # a warm-up decode costs time and proves nothing the first call won't
    # The embedded server always listens. Not on a TCP port of localhost: on a socket in
    # a private directory, behind a key nobody knows, and the socket's name is removed
    # once it listens, so nothing can connect to it. We call the server directly.
    _crash_if_asked("load")  # here, not inside: a test's crash must not leave the folder
    private = tempfile.mkdtemp(prefix="amelia-local-")
    sock = os.path.join(private, "llama.sock")
    params.hostnames = [sock]
    params.api_keys = [os.urandom(24).hex()]
    try:
        server = xllamacpp.Server(params)
    except (RuntimeError, ValueError, OSError) as e:
        return None, f"llama.cpp could not load it ({e}); is it a complete GGUF model?"
    finally:
        for remove, name in ((os.unlink, sock), (os.rmdir, private)):
            try:
                remove(name)
            except OSError:
                pass
    return server, None


def chat(server, body: dict, channel: Channel) -> None:
    state = {"finish": None, "usage": None, "error": None}

    def on_chunk(chunk) -> bool:
        """Forward one streamed chunk; True stops the generation (the parent is gone)."""
        if not isinstance(chunk, dict):
            return False
        if chunk.get("error"):
            state["error"] = chunk["error"]
            return True
        if chunk.get("usage"):
            state["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text and not channel.send({"text": text}):
                return True
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]
        return False

    body = dict(body, stream=True, stream_options={"include_usage": True})
    _crash_if_asked("chat")
    result = server.handle_chat_completions(body, on_chunk)
    if isinstance(result, dict) and result.get("error"):
        state["error"] = result["error"]
    error = state["error"]
    if error:
        if isinstance(error, dict):
            channel.send({"error": str(error.get("message") or error),
                          "kind": str(error.get("type") or "error")})
        else:
            channel.send({"error": str(error), "kind": "error"})
        return
    usage = state["usage"] or {}
    details = usage.get("prompt_tokens_details") or {}
    channel.send({"done": True, "finish": state["finish"],
                  "usage": {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                            "completion_tokens": int(usage.get("completion_tokens") or 0),
                            "cached_tokens": int(details.get("cached_tokens") or 0)}})


def main(argv: list[str]) -> int:
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    channel = Channel()
    server = None
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            channel.send({"error": "the worker got a line that is not JSON", "kind": "protocol"})
            continue
        op = message.get("op")
        if op == "load":
            server, error = load(message)
            channel.send({"error": error, "kind": "load"} if error else {"ok": True})
        elif op == "chat" and server is not None:
            chat(server, message.get("body") or {}, channel)
        elif op == "chat":
            channel.send({"error": "no model is loaded", "kind": "protocol"})
        else:
            channel.send({"error": f"unknown op {op!r}", "kind": "protocol"})
        if channel.broken:
            break
    # Skip interpreter teardown: the server's native threads need no orderly goodbye.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
