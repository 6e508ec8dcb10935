"""A fake Anthropic Messages API server speaking the real wire format.

    POST /v1/messages   (non-streaming, and SSE streaming: message_start, content_block_*,
                         message_delta, message_stop; forced tool use answers with tool_use)
    GET  /v1/models     (health checks)

Usage in tests: `with FakeAnthropic("hello") as srv: Anthropic(base_url=srv.base_url, ...)`.
As a script: `python tests/fakes/anthropic_server.py --port 0 --latency 1.0 [--reply TEXT]`
prints its base URL ("http://127.0.0.1:PORT", as the SDK expects) and serves until killed.

Prompt caching is simulated: the text up to each `cache_control` breakpoint is "written"
the first time the server sees it and "read" afterwards (usage cache_creation_input_tokens /
cache_read_input_tokens, counted in words); `min_cache_tokens` mimics the real minimum.
The key is accepted from x-api-key (wins) or `Authorization: Bearer` (SDK 2.x sends that);
with anthropic-version >= 2026-10-21, temperature/top_p/top_k are rejected with 400.
"""

from __future__ import annotations

import json
import sys
import uuid

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fakes._base import (FakeServer, Reply, count_tokens, example_from_schema, json_chunks,
                             serve_cli, sse, text_chunks)
else:
    from ._base import (FakeServer, Reply, count_tokens, example_from_schema, json_chunks,
                        serve_cli, sse, text_chunks)

DEFAULT_MODEL = "claude-fake"

# The real error bodies: status → (type, message)
ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified "
                              "resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization "
                              "of 50,000 input tokens per minute. For details, refer to: "
                              "https://docs.claude.com/en/api/rate-limits."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
ERROR_MESSAGES = {v[0]: v[1] for v in ERRORS.values()}


def _blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _block_text(block: dict) -> str:
    if block.get("type") == "text":
        return block.get("text", "")
    if block.get("type") in ("tool_use",):
        return json.dumps(block.get("input"))
    if block.get("type") == "tool_result":
        return " ".join(_block_text(b) for b in _blocks(block.get("content", "")))
    return ""


class FakeAnthropic(FakeServer):
    name = "anthropic"
    prefix = ""

    def __init__(self, reply=None, *, min_cache_tokens: int = 0, **kw):
        super().__init__(reply, **kw)
        self.min_cache_tokens = min_cache_tokens

    def _error(self, h, status: int, reply: Reply | None = None, message: str | None = None,
               model: str = "", etype: str | None = None):
        default_type, template = ERRORS.get(status, ("invalid_request_error" if status < 500
                                                     else "api_error", f"Error {status}"))
        msg = message or (reply.error_message if reply else None) or template.format(
            model=model or DEFAULT_MODEL)
        headers = dict(reply.headers) if reply else {}
        if reply is not None and reply.retry_after is not None:
            headers["retry-after"] = reply.retry_after
        rid = "req_" + uuid.uuid4().hex[:24]
        headers["request-id"] = rid
        h.send_json(status, {"type": "error", "error": {"type": etype or default_type,
                                                        "message": msg},
                             "request_id": rid}, headers)

    def _dispatch(self, h, method, path, headers, body, raw):
        key = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:]
        if self.api_key is not None and key != self.api_key:
            return self._error(h, 401, message="x-api-key header is required" if not key
                               else "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return self._error(h, 400, message="anthropic-version: header is required")
        if method == "GET" and path == "/v1/models":
            model = self.model or DEFAULT_MODEL
            return h.send_json(200, {"data": [{"type": "model", "id": model,
                                               "display_name": "Claude (fake)",
                                               "created_at": "2025-01-01T00:00:00Z"}],
                                     "has_more": False, "first_id": model, "last_id": model})
        if method != "POST" or path != "/v1/messages":
            return self._error(h, 404, message=f"Not found: {method} {path}",
                               etype="not_found_error")
        problem = self._validate(body, headers.get("anthropic-version", ""))
        if problem:
            return self._error(h, 400, message=problem)
        reply = self._next_reply(body)
        self._wait_before_answer(reply)
        if reply.status != 200:
            return self._error(h, reply.status, reply, model=body["model"])
        self._answer(h, body, reply)

    def _validate(self, body, version: str = "") -> str | None:
        if not isinstance(body, dict):
            return "Request body is not valid JSON"
        if not body.get("model"):
            return "model: Field required"
        mt = body.get("max_tokens")
        if mt is None:
            return "max_tokens: Field required"
        if not isinstance(mt, int) or mt < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        for name in ("temperature", "top_p", "top_k"):
            if name in body and version >= "2026-10-21":  # gone in that API version
                return f"{name}: Extra inputs are not permitted"
        t = body.get("temperature")
        if t is not None and not (0 <= t <= 1):
            return "temperature: range: 0..1"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        if messages[0].get("role") != "user":
            return "messages: first message must use the \"user\" role"
        n_cache = 0
        for i, m in enumerate(messages):
            if m.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            content = m.get("content")
            if isinstance(content, str) and not content:
                return f"messages.{i}: user messages must have non-empty content"
            for j, b in enumerate(_blocks(content)):
                if b.get("type") == "text" and not b.get("text"):
                    return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                n_cache += "cache_control" in b
        system = body.get("system")
        if system is not None:
            if isinstance(system, list):
                for j, b in enumerate(system):
                    if not isinstance(b, dict) or b.get("type") != "text":
                        return f"system.{j}: Input should be a valid text block"
                    if not b.get("text"):
                        return f"system.{j}.text: text content blocks must be non-empty"
                    n_cache += "cache_control" in b
            elif not isinstance(system, str):
                return "system: Input should be a valid string or list"
        tools = body.get("tools") or []
        names = set()
        for j, tool in enumerate(tools):
            if not tool.get("name"):
                return f"tools.{j}.name: Field required"
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{j}.custom.input_schema.type: Field required"
            names.add(tool["name"])
            n_cache += "cache_control" in tool
        choice = body.get("tool_choice")
        if choice is not None:
            if choice.get("type") == "tool" and choice.get("name") not in names:
                return f"tool_choice: tool '{choice.get('name')}' not found in tools"
            if choice.get("type") in ("any", "tool") and not tools:
                return "tool_choice: may only be specified while providing tools."
        if n_cache > 4:
            return (f"A maximum of 4 blocks with cache_control may be provided. "
                    f"Found {n_cache}.")
        return None

    def _usage_in(self, body) -> tuple[int, int, int]:
        """(uncached input, cache read, cache write) in words, simulating prompt caching."""
        segments: list[tuple[str, bool]] = []
        for tool in body.get("tools") or []:
            segments.append((json.dumps(tool.get("input_schema")), "cache_control" in tool))
        system = body.get("system")
        for b in _blocks(system) if system is not None else []:
            segments.append((b.get("text", ""), "cache_control" in b))
        for m in body["messages"]:
            for b in _blocks(m.get("content")):
                segments.append((_block_text(b), "cache_control" in b))
        total = sum(count_tokens(t) for t, _ in segments)
        breakpoints = [i for i, (_, marked) in enumerate(segments) if marked]
        if not breakpoints:
            return total, 0, 0

        def prefix(i):
            return segments[:i + 1]

        def words(segs):
            return sum(count_tokens(t) for t, _ in segs)

        read = 0
        seen = [self._cache_lookup(json.dumps([body["model"], prefix(i)]))
                for i in breakpoints]
        for i, hit in zip(breakpoints, seen):
            if hit:
                read = words(prefix(i))
        last = words(prefix(breakpoints[-1]))
        if last < self.min_cache_tokens:
            return total, 0, 0
        write = last - read
        return total - read - write, read, write

    def _answer(self, h, body, reply: Reply):
        model = self.model or body["model"]
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        tool = None
        if tools and choice.get("type") == "tool":
            tool = next(t for t in tools if t["name"] == choice["name"])
        elif tools and choice.get("type") == "any":
            tool = tools[0]
        elif tools and reply.json_obj is not None and choice.get("type") != "none":
            tool = tools[0]

        if tool is not None:
            if reply.tool_json is not None:
                try:
                    tool_input = json.loads(reply.tool_json)
                except ValueError:
                    tool_input = {}  # what a non-streamed answer could carry at best
            elif reply.json_obj is not None:
                tool_input = reply.json_obj
            elif reply.text is not None:
                try:
                    tool_input = json.loads(reply.text)
                except ValueError:
                    tool_input = {"value": reply.text}
                if not isinstance(tool_input, dict):
                    tool_input = {"value": tool_input}
            else:
                tool_input = example_from_schema(tool["input_schema"]) or {}
            out_text = reply.tool_json if reply.tool_json is not None else json.dumps(tool_input)
        elif reply.json_obj is not None:
            out_text = json.dumps(reply.json_obj)
        elif reply.text is not None:
            out_text = reply.text
        else:
            out_text = "This is a fake answer from the test server."

        uncached, read, write = self._usage_in(body)
        u = reply.usage or {}
        usage_in = {"input_tokens": u.get("input_tokens", uncached),
                    "cache_creation_input_tokens": u.get("cache_write_tokens", write),
                    "cache_read_input_tokens": u.get("cache_read_tokens",
                                                     u.get("cached_tokens", read))}
        output_tokens = u.get("output_tokens", count_tokens(out_text))
        stop_reason = reply.stop_reason or ("tool_use" if tool is not None else "end_turn")
        mid = "msg_" + uuid.uuid4().hex[:24]
        tool_id = "toolu_" + uuid.uuid4().hex[:24]
        headers = dict(reply.headers)
        headers["request-id"] = "req_" + uuid.uuid4().hex[:24]

        if tool is not None:
            block = {"type": "tool_use", "id": tool_id, "name": tool["name"], "input": tool_input}
        else:
            block = {"type": "text", "text": out_text}

        if not body.get("stream"):
            return h.send_json(200, {
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {**usage_in, "output_tokens": output_tokens,
                          "service_tier": "standard"}}, headers)

        events = [sse({"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {**usage_in, "output_tokens": 1, "service_tier": "standard"}}},
            "message_start")]
        if tool is not None:
            events.append(sse({"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": tool_id, "name": tool["name"], "input": {}}},
                "content_block_start"))
            events.append(sse({"type": "ping"}, "ping"))
            for piece in [""] + json_chunks(out_text):
                events.append(sse({"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": piece}}, "content_block_delta"))
        else:
            events.append(sse({"type": "content_block_start", "index": 0,
                               "content_block": {"type": "text", "text": ""}},
                              "content_block_start"))
            events.append(sse({"type": "ping"}, "ping"))
            for piece in text_chunks(out_text):
                events.append(sse({"type": "content_block_delta", "index": 0, "delta": {
                    "type": "text_delta", "text": piece}}, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        events.append(sse({"type": "message_delta", "delta": {"stop_reason": stop_reason,
                                                              "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}, "message_delta"))
        events.append(sse({"type": "message_stop"}, "message_stop"))

        def error_event(etype):
            return sse({"type": "error", "error": {
                "type": etype, "message": ERROR_MESSAGES.get(etype, "Internal server error")}},
                "error")

        self._stream(h, events, reply, error_event, headers)


if __name__ == "__main__":
    serve_cli(FakeAnthropic)
