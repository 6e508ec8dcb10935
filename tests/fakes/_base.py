"""Machinery shared by the fake provider servers: HTTP server, scripted replies, SSE.

Standard library only, so the servers also run as plain scripts (see `serve_cli`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TEXT = "This is a fake answer from the test server."


@dataclass
class Reply:
    """One scripted behaviour, consumed by one request (see FakeServer.enqueue).

    text / json_obj: the answer (json_obj wins; for a structured request it is the JSON
        answer, for Anthropic the input of the forced tool). Neither: the server default.
    status: != 200 answers with that provider's real error JSON body (429, 500, 529, 401...).
    retry_after: sent as the Retry-After header (seconds, or any string) with any status.
    error_message: overrides the message in the error body.
    latency: seconds before answering; None uses the server's latency.
    hang: seconds to sleep before answering at all (to trip client timeouts).
    break_stream_after: streaming only; after N SSE events the connection is cut
        mid-body (no final chunk), as when a proxy or the network drops it.
    end_stream_after: streaming only; after N SSE events the body ends cleanly, without
        the remaining (final) events.
    stream_error: streaming only; an error type ("overloaded_error", "server_error", ...)
        sent as an in-stream error event after `end_stream_after` events (default 1),
        after which the body ends.
    chunk_delay: seconds between SSE events; None uses the server's chunk_delay.
    usage: overrides of the crude word-count usage, with the neutral keys
        input_tokens, output_tokens, cached_tokens, cache_write_tokens.
    stop_reason: overrides the finish/stop reason ("length", "max_tokens", ...).
    tool_json: Anthropic, forced tool use: the tool input's JSON text exactly as streamed
        (e.g. cut short, as a max_tokens stop leaves it).
    headers: extra response headers.
    """

    text: str | None = None
    json_obj: object = None
    status: int = 200
    retry_after: float | str | None = None
    error_message: str | None = None
    latency: float | None = None
    hang: float | None = None
    break_stream_after: int | None = None
    end_stream_after: int | None = None
    stream_error: str | None = None
    chunk_delay: float | None = None
    usage: dict | None = None
    stop_reason: str | None = None
    tool_json: str | None = None
    headers: dict = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # lower-case names
    body: object  # the parsed JSON body, or None
    time: float = field(default_factory=time.time)  # when it arrived

    @property
    def json(self):
        return self.body


def count_tokens(text: str) -> int:
    """Crude token count: words."""
    return len(text.split())


def text_chunks(text: str) -> list[str]:
    """Split text into stream deltas (a word with its trailing space each)."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def json_chunks(text: str, size: int = 12) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def example_from_schema(schema, depth: int = 0):
    """A small instance of a JSON schema: the default answer to a structured request."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_from_schema(schema[key][0], depth + 1)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), typ[0] if typ else None)
    if typ is None and "properties" in schema:
        typ = "object"
    if typ == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: example_from_schema(props.get(k, {}), depth + 1) for k in required}
    if typ == "array":
        n = max(1, schema.get("minItems", 1))
        return [example_from_schema(schema.get("items", {}), depth + 1) for _ in range(n)]
    if typ == "string":
        return "x" * max(schema.get("minLength", 0), 4)
    if typ == "integer":
        return int(schema.get("minimum", 0))
    if typ == "number":
        return schema.get("minimum", 0)
    if typ == "boolean":
        return True
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return  # the client went away (timeouts, cut streams): expected here
        super().handle_error(request, client_address)


class _Cut(Exception):
    """Raised inside the handler to drop the connection without finishing the body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes go out at once
    fake: "FakeServer"  # set per server class

    def log_message(self, format, *args):
        if self.fake.verbose:
            sys.stderr.write("fake %s: %s\n" % (self.fake.name, format % args))

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _handle(self, method: str):
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        fake._record(RecordedRequest(method, path, headers, body))
        fake._enter()
        try:
            fake._dispatch(self, method, path, headers, body, raw)
        except _Cut:
            self._cut()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        finally:
            fake._leave()

    # -- writing ---------------------------------------------------------------------

    def send_json(self, status: int, obj, headers: dict | None = None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self, headers: dict | None = None):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, text: str):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self):
        """Drop the connection mid-response: the client sees an incomplete body."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeServer:
    """A real HTTP server on 127.0.0.1 in a background thread. Subclasses speak a wire format.

    reply: the default answer: a string, or a callable taking the request body and
        returning a string, a dict/list (a JSON answer) or a Reply. None: a fixed text,
        or for structured requests a small instance of the requested schema.
    latency: seconds before each answer. chunk_delay: seconds between SSE events.
    api_key: when set, requests must carry this key (else 401 with the real error body).
    """

    name = "fake"
    prefix = ""  # the path prefix base_url includes

    def __init__(self, reply=None, *, latency: float = 0.0, chunk_delay: float = 0.0,
                 api_key: str | None = None, model: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.reply = reply
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.api_key = api_key
        self.model = model
        self.verbose = verbose
        self.requests: list[RecordedRequest] = []
        self.max_concurrent = 0
        self._inflight = 0
        self._queue: list = []
        self._cache_seen: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"fake": self})
        self._httpd = _HTTPServer((host, port), handler)
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def start(self) -> "FakeServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.01},
                                            name=f"{self.name}-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging / slow handlers
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- scripting and inspection ----------------------------------------------------

    def enqueue(self, *replies) -> None:
        """Script the next requests: each Reply (or str: a text reply) is used once, in order."""
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def bodies(self) -> list:
        return [r.body for r in self.requests]

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def calls(self, path_suffix: str = "") -> list[RecordedRequest]:
        """Recorded POSTs (model calls), optionally only those whose path ends so."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(path_suffix)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._cache_seen.clear()
            self.max_concurrent = 0

    # -- internals -------------------------------------------------------------------

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _enter(self):
        with self._lock:
            self._inflight += 1
            self.max_concurrent = max(self.max_concurrent, self._inflight)

    def _leave(self):
        with self._lock:
            self._inflight -= 1

    def _next_reply(self, body) -> Reply:
        """The scripted reply if any, else one from the default; text/json filled when set."""
        with self._lock:
            reply = self._queue.pop(0) if self._queue else Reply()
        if reply.status == 200 and reply.text is None and reply.json_obj is None \
                and reply.tool_json is None:
            default = self.reply(body) if callable(self.reply) else self.reply
            if isinstance(default, Reply):
                reply = default
            elif isinstance(default, str):
                reply = _replace(reply, text=default)
            elif default is not None:
                reply = _replace(reply, json_obj=default)
        return reply

    def _sleep(self, seconds: float | None) -> None:
        if seconds and seconds > 0:
            self._stopping.wait(seconds)

    def _wait_before_answer(self, reply: Reply) -> None:
        self._sleep(reply.hang)
        self._sleep(self.latency if reply.latency is None else reply.latency)

    def _chunk_delay(self, reply: Reply) -> float:
        return self.chunk_delay if reply.chunk_delay is None else reply.chunk_delay

    def _cache_lookup(self, key_text: str) -> bool:
        """Whether this prefix was seen before (and remember it)."""
        key = hashlib.sha256(key_text.encode()).hexdigest()
        with self._lock:
            seen = key in self._cache_seen
            self._cache_seen.add(key)
        return seen

    def _stream(self, h: _Handler, events: list[str], reply: Reply, error_event=None,
                headers: dict | None = None) -> None:
        """Write SSE events, honouring break/end/stream_error; error_event(type) -> str."""
        h.start_sse(headers)
        delay = self._chunk_delay(reply)
        stop_at = reply.end_stream_after
        if reply.stream_error and stop_at is None:
            stop_at = 1
        for i, event in enumerate(events):
            if reply.break_stream_after is not None and i >= reply.break_stream_after:
                raise _Cut()
            if stop_at is not None and i >= stop_at:
                break
            if i and delay:
                self._sleep(delay)
            h.write_chunk(event)
        if reply.stream_error and error_event is not None:
            h.write_chunk(error_event(reply.stream_error))
        h.end_chunks()

    def _dispatch(self, h: _Handler, method: str, path: str, headers: dict, body, raw: bytes):
        raise NotImplementedError


def _replace(reply: Reply, **changes) -> Reply:
    return replace(reply, **changes)


def sse(data, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def serve_cli(server_cls, argv=None) -> None:
    """`python tests/fakes/<x>_server.py --port 0 --latency 1.0 [--reply TEXT]`.

    Prints the base URL on the first line of stdout, then serves until killed.
    """
    parser = argparse.ArgumentParser(description=f"Fake {server_cls.name} API server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    parser.add_argument("--reply", help="the answer text (default: a fixed text, or a schema "
                                        "instance for structured requests)")
    parser.add_argument("--reply-json", help="the answer as JSON (a structured answer)")
    parser.add_argument("--api-key", help="require this key")
    parser.add_argument("--model", help="the model id to report")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    reply = json.loads(args.reply_json) if args.reply_json else args.reply
    srv = server_cls(reply, latency=args.latency, chunk_delay=args.chunk_delay,
                     api_key=args.api_key, model=args.model, host=args.host, port=args.port,
                     verbose=args.verbose)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    srv.start()
    print(srv.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        srv.stop()
