"""`provider: anthropic`: Claude through the Messages API, with the anthropic SDK.

One streamed Messages call per attempt (`max_retries=0`: retries are resilience.py's).
Request layout: `Request.system` as a system text block (marked for prompt caching when
long), then `Request.history` turns, then the prompt as the last user turn.
`Request.shared_context` is its own text block, marked `cache_control: ephemeral`, at the
start of the first user turn: the cached prefix (system + shared context) stays the same
across calls and repair attempts. Structured output is tool use: one tool, "answer",
whose input schema is the requested schema, forced with tool_choice; the completion text
is the JSON of the tool's input.

The SDK (2.x) speaks API version 2026-10-21: the key goes as `Authorization: Bearer`,
and sampling parameters are gone, so a model's `temperature:` is not sent.
"""

from __future__ import annotations

import json

import anthropic as sdk

from ._wire import SDKProvider, object_schema, transport_errors
from . import Completion, ProviderError, Request, Usage

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens
CACHE_SYSTEM_CHARS = 1024  # a system prompt this long gets its own cache breakpoint
CACHE = {"type": "ephemeral"}
TOOL = "answer"
INCOMPLETE = "stream ended before the answer was complete"

# In-stream error events arrive with HTTP 200; their type says what status they stand for.
ERROR_TYPE_STATUS = {"invalid_request_error": 400, "authentication_error": 401,
                     "permission_error": 403, "not_found_error": 404,
                     "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                     "timeout_error": 504, "overloaded_error": 529}


class Provider(SDKProvider):
    default_model = DEFAULT_MODEL
    sdk = sdk
    api_name = "the Anthropic API"
    name = "anthropic"

    def make_client(self, **kwargs):
        return sdk.Anthropic(**kwargs)

    # -- the call ----------------------------------------------------------------------

    def params(self, request: Request) -> dict:
        """The Messages API arguments for a request."""
        messages = [_turn(t) for t in request.history]
        messages.append({"role": "user", "content": [_text(request.prompt)]})
        if request.shared_context:
            shared = {**_text(request.shared_context), "cache_control": CACHE}
            if messages[0]["role"] == "user":
                messages[0] = {"role": "user", "content": [shared, *messages[0]["content"]]}
            else:
                messages.insert(0, {"role": "user", "content": [shared]})
        elif messages[0]["role"] != "user":  # the API wants a user turn first
            messages.insert(0, {"role": "user", "content": [_text("(continue)")]})
        params = {"model": self.model, "messages": messages,
                  "max_tokens": self.config.max_tokens or DEFAULT_MAX_TOKENS, "stream": True}
        if request.system:
            block = _text(request.system)
            if len(request.system) >= CACHE_SYSTEM_CHARS:
                block["cache_control"] = CACHE
            params["system"] = [block]
        # No temperature: API version 2026-10-21, which this SDK (2.x) sends, answers 400 to
        # temperature / top_p / top_k, even at their defaults. `temperature:` is ignored.
        if request.json_schema is not None:
            schema, _ = object_schema(request.json_schema)
            params["tools"] = [{"name": TOOL, "input_schema": schema,
                                "description": "Give your answer: its input is the answer."}]
            params["tool_choice"] = {"type": "tool", "name": TOOL}
        return params

    def complete(self, request: Request, on_text=None) -> Completion:
        client = self.client()
        params = self.params(request)
        blocks: dict[int, dict] = {}
        counts = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0}
        stop_reason = ""
        model = ""
        done = False
        try:
            stream = client.messages.create(**params)
        except transport_errors(sdk) as e:
            raise self.error(e) from None
        with stream:
            for event in self.items(stream):
                kind = event.type
                if kind == "message_start":
                    model = event.message.model or model
                    _count(counts, event.message.usage)
                elif kind == "content_block_start":
                    cb = event.content_block
                    block = blocks[event.index] = {"type": cb.type,
                                                   "name": getattr(cb, "name", None), "parts": []}
                    if cb.type == "text" and cb.text:
                        block["parts"].append(cb.text)
                        if on_text is not None:
                            on_text(cb.text)
                elif kind == "content_block_delta":
                    block = blocks.setdefault(event.index, {"type": "", "name": None,
                                                            "parts": []})
                    piece = None
                    if event.delta.type == "text_delta":
                        piece = event.delta.text
                    elif event.delta.type == "input_json_delta":
                        piece = event.delta.partial_json
                    if piece:
                        block["parts"].append(piece)
                        if on_text is not None:
                            on_text(piece)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    _count(counts, event.usage)
                elif kind == "message_stop":
                    done = True
        if not done:
            raise ProviderError(f"{self._who()}: {INCOMPLETE}", retryable=True)
        text = "".join("".join(b["parts"]) for _, b in sorted(blocks.items())
                       if b["type"] == "text")
        if request.json_schema is not None:
            text = self._structured_text(request.json_schema, blocks, text, stop_reason)
        usage = Usage(input_tokens=counts["input_tokens"], output_tokens=counts["output_tokens"],
                      cached_tokens=counts["cache_read_input_tokens"],
                      cache_write_tokens=counts["cache_creation_input_tokens"])
        return Completion(text=text, usage=usage, model=model or self.model,
                          stop_reason=stop_reason or "")

    def _structured_text(self, schema, blocks, text: str, stop_reason: str) -> str:
        tool = next((b for _, b in sorted(blocks.items())
                     if b["type"] == "tool_use" and b["name"] == TOOL), None)
        if tool is None:
            return text  # no tool call: the validator and repair attempts take it from here
        raw = "".join(tool["parts"]) or "{}"
        try:
            obj = json.loads(raw)
        except ValueError:
            if stop_reason == "max_tokens":
                raise ProviderError(
                    f"{self._who()}: the answer was cut off at max_tokens "
                    f"({self.config.max_tokens or DEFAULT_MAX_TOKENS}) before its JSON was "
                    f"complete; raise max_tokens") from None
            raise ProviderError(f"{self._who()}: the answer's JSON was malformed",
                                retryable=True) from None
        _, wrapped = object_schema(schema)
        if wrapped and isinstance(obj, dict) and "value" in obj:
            obj = obj["value"]
        return json.dumps(obj, ensure_ascii=False)

    # -- errors ------------------------------------------------------------------------

    def status_of(self, e) -> int:
        """An error event inside a 200 stream carries its kind in the body, not a status."""
        if e.status_code < 400:
            return ERROR_TYPE_STATUS.get(_body_error_type(e.body), 500)
        return e.status_code


# -- helpers -------------------------------------------------------------------------------

def _text(text: str) -> dict:
    # The API rejects empty text blocks.
    return {"type": "text", "text": text if text.strip() else "(empty)"}


def _turn(turn) -> dict:
    if isinstance(turn, dict):
        role, content = turn.get("role", "user"), turn.get("content", "")
    else:
        role, content = turn
    return {"role": "assistant" if role == "assistant" else "user", "content": [_text(content)]}


def _count(counts: dict, usage) -> None:
    """Take the usage figures an event carries (message_delta's are cumulative)."""
    if usage is None:
        return
    for name in counts:
        value = getattr(usage, name, None)
        if value is not None:
            counts[name] = value


def _body_error_type(body) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return err["type"]
    return ""


