"""A fake OpenAI Chat Completions server speaking the real wire format.

    POST /v1/chat/completions   (non-streaming, and SSE streaming with include_usage)
    GET  /v1/models             (health checks)

Usage in tests: `with FakeOpenAI("hello") as srv: OpenAI(base_url=srv.base_url, ...)`.
As a script: `python tests/fakes/openai_server.py --port 0 --latency 1.0 [--reply TEXT]`
prints its base URL ("http://127.0.0.1:PORT/v1") on the first line and serves until killed.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fakes._base import (FakeServer, Reply, count_tokens, example_from_schema, serve_cli,
                             sse, text_chunks)
else:
    from ._base import (FakeServer, Reply, count_tokens, example_from_schema, serve_cli, sse,
                        text_chunks)

DEFAULT_MODEL = "gpt-fake"

# The real error bodies: status → (type, code, message)
ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided: {masked}. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
          "Limit 3, Used 3, Requested 1. Please try again in 20s."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _mask(key: str) -> str:
    """How OpenAI echoes a rejected key: never the whole key."""
    if not key:
        return "''"
    return key[:3] + "*" * 6 + key[-4:] if len(key) > 8 else "*" * len(key)


def _message_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class FakeOpenAI(FakeServer):
    name = "openai"
    prefix = "/v1"

    def _error(self, h, status: int, reply: Reply | None = None, message: str | None = None,
               model: str = "", key: str = "", type_=None, code=None):
        etype, ecode, template = ERRORS.get(status, ("invalid_request_error" if status < 500
                                                     else "server_error", None, f"Error {status}"))
        msg = message or (reply.error_message if reply else None) or template.format(
            model=model or DEFAULT_MODEL, masked=_mask(key))
        headers = dict(reply.headers) if reply else {}
        if reply is not None and reply.retry_after is not None:
            headers["Retry-After"] = reply.retry_after
        headers["x-request-id"] = "req_" + uuid.uuid4().hex[:16]
        h.send_json(status, {"error": {"message": msg, "type": type_ or etype, "param": None,
                                       "code": code or ecode}}, headers)

    def _dispatch(self, h, method, path, headers, body, raw):
        key = ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:]
        if self.api_key is not None and key != self.api_key:
            if not key:
                return self._error(h, 401, message="You didn't provide an API key. You need to "
                                   "provide your API key in an Authorization header using Bearer "
                                   "auth (i.e. Authorization: Bearer YOUR_KEY).", code=None)
            return self._error(h, 401, key=key)
        if method == "GET" and path == "/v1/models":
            model = self.model or DEFAULT_MODEL
            return h.send_json(200, {"object": "list", "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "fake"}]})
        if method == "GET" and path.startswith("/v1/models/"):
            return h.send_json(200, {"id": path.rsplit("/", 1)[1], "object": "model",
                                     "created": 0, "owned_by": "fake"})
        if method != "POST" or path != "/v1/chat/completions":
            return self._error(h, 404, message=f"Invalid URL ({method} {path})", code=None)
        problem = self._validate(body, raw)
        if problem:
            return self._error(h, 400, message=problem)
        reply = self._next_reply(body)
        self._wait_before_answer(reply)
        model = body["model"]
        if reply.status != 200:
            return self._error(h, reply.status, reply, model=model, key=key)
        self._answer(h, body, reply)

    def _validate(self, body, raw) -> str | None:
        if not isinstance(body, dict):
            return ("We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly.)")
        if not body.get("model"):
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "[] is too short - 'messages'"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in (
                    "system", "developer", "user", "assistant", "tool"):
                return f"Invalid value for 'messages[{i}].role'."
        if body.get("stream_options") is not None and not body.get("stream"):
            return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        rf = body.get("response_format")
        if rf is not None:
            if rf.get("type") not in ("text", "json_object", "json_schema"):
                return "Invalid value for 'response_format.type'."
            if rf.get("type") == "json_schema":
                js = rf.get("json_schema")
                if not isinstance(js, dict) or not js.get("name") or not isinstance(
                        js.get("schema"), dict):
                    return "Missing required parameter: 'response_format.json_schema.name'."
        return None

    def _answer(self, h, body, reply: Reply):
        messages = body["messages"]
        rf = body.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" \
            else None
        if reply.json_obj is not None:
            text = json.dumps(reply.json_obj)
        elif reply.text is not None:
            text = reply.text
        elif schema is not None:
            text = json.dumps(example_from_schema(schema))
        elif rf.get("type") == "json_object":
            text = json.dumps({"answer": "fake"})
        else:
            text = "This is a fake answer from the test server."

        prompt_words = sum(count_tokens(_message_text(m.get("content"))) for m in messages)
        prefix = json.dumps(messages[:-1])
        cached = sum(count_tokens(_message_text(m.get("content"))) for m in messages[:-1]) \
            if len(messages) > 1 and self._cache_lookup(prefix) else 0
        u = reply.usage or {}
        prompt_tokens = u.get("input_tokens", prompt_words)
        completion_tokens = u.get("output_tokens", count_tokens(text))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": u.get("cached_tokens", cached),
                                           "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        finish = reply.stop_reason or "stop"
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model = self.model or body["model"]
        headers = dict(reply.headers)
        headers["x-request-id"] = "req_" + uuid.uuid4().hex[:16]

        if not body.get("stream"):
            return h.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                     "refusal": None, "annotations": []},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage, "service_tier": "default"}, headers)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish_reason=None, choices=True, usage_value=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish_reason}] if choices else []}
            if include_usage:
                obj["usage"] = usage_value
            return sse(obj)

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in text_chunks(text)]
        events.append(chunk({}, finish))
        if include_usage:
            events.append(chunk(None, choices=False, usage_value=usage))
        events.append(sse("[DONE]"))

        def error_event(etype):
            return sse({"error": {"message": "The server had an error while processing your "
                                  "request. Sorry about that!", "type": etype, "param": None,
                                  "code": None}})

        self._stream(h, events, reply, error_event, headers)


if __name__ == "__main__":
    serve_cli(FakeOpenAI)
