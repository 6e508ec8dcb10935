"""`provider: openai`: OpenAI, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp
server, ...) through `base_url:`, with the openai SDK.

One streamed Chat Completions call per attempt (`max_retries=0`: retries are
resilience.py's). Structured output uses a JSON-schema response format. Request layout:
system message (`Request.system`), then `Request.history` turns, then the prompt as the
last user message; `Request.shared_context` opens the first user turn, so the prefix that
OpenAI's automatic prompt caching matches stays the same across calls and repair attempts.
"""

from __future__ import annotations

import json

import openai as sdk

from ._wire import SDKProvider, object_schema, transport_errors
from . import Completion, ProviderError, Request, Usage

DEFAULT_MODEL = "gpt-5.4-mini"
INCOMPLETE = "stream ended before the answer was complete"


class Provider(SDKProvider):
    default_model = DEFAULT_MODEL
    sdk = sdk
    api_name = "the OpenAI API"
    name = "openai"

    def make_client(self, **kwargs):
        return sdk.OpenAI(**kwargs)

    # -- the call ----------------------------------------------------------------------

    def params(self, request: Request) -> dict:
        """The Chat Completions arguments for a request."""
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        turns = [_turn(t) for t in request.history] + [{"role": "user",
                                                        "content": request.prompt}]
        if request.shared_context:
            if turns[0]["role"] == "user":
                turns[0] = {"role": "user",
                            "content": f"{request.shared_context}\n\n{turns[0]['content']}"}
            else:
                turns.insert(0, {"role": "user", "content": request.shared_context})
        messages += turns
        params = {"model": self.model, "messages": messages, "stream": True,
                  "stream_options": {"include_usage": True}}
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            # OpenAI's own API wants max_completion_tokens (reasoning models reject
            # max_tokens); compatible servers know max_tokens best.
            key = "max_tokens" if self.config.base_url else "max_completion_tokens"
            params[key] = self.config.max_tokens
        if request.json_schema is not None:
            schema, _ = object_schema(request.json_schema)
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": schema, "strict": False}}
        return params

    def complete(self, request: Request, on_text=None) -> Completion:
        client = self.client()
        params = self.params(request)
        parts: list[str] = []
        refusal: list[str] = []
        finish = None
        usage = None
        model = ""
        try:
            stream = client.chat.completions.create(**params)
        except transport_errors(sdk) as e:
            raise self.error(e) from None
        with stream:
            for chunk in self.items(stream):
                model = getattr(chunk, "model", None) or model
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta is not None and delta.content:
                        parts.append(delta.content)
                        if on_text is not None:
                            on_text(delta.content)
                    if delta is not None and getattr(delta, "refusal", None):
                        refusal.append(delta.refusal)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        if finish is None:
            raise ProviderError(f"{self._who()}: {INCOMPLETE}", retryable=True)
        if refusal:
            raise ProviderError(self._scrub(f"{self._who()}: the model refused: "
                                            f"{self._clip(''.join(refusal))}"))
        text = "".join(parts)
        if request.json_schema is not None:
            text = self._structured_text(request.json_schema, text, finish)
        return Completion(text=text, usage=_usage(usage), model=model or self.model,
                          stop_reason=finish)

    def _structured_text(self, schema: dict, text: str, finish: str) -> str:
        try:
            obj = json.loads(text)
        except ValueError:
            if finish == "length":
                raise ProviderError(
                    f"{self._who()}: the answer was cut off at max_tokens "
                    f"({self.config.max_tokens}) before its JSON was complete; raise "
                    f"max_tokens") from None
            return text  # the validator and repair attempts take it from here
        _, wrapped = object_schema(schema)
        if wrapped and isinstance(obj, dict) and "value" in obj:
            return json.dumps(obj["value"], ensure_ascii=False)
        return text


# -- helpers -------------------------------------------------------------------------------

def _turn(turn) -> dict:
    if isinstance(turn, dict):
        return {"role": turn.get("role", "user"), "content": turn.get("content", "")}
    role, content = turn
    return {"role": role, "content": content}


def _usage(u) -> Usage:
    if u is None:
        return Usage()
    details = getattr(u, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return Usage(input_tokens=u.prompt_tokens or 0, output_tokens=u.completion_tokens or 0,
                 cached_tokens=cached or 0)


