"""Wire-format helpers shared by the HTTP providers (openai, anthropic)."""

from __future__ import annotations

import email.utils
import time


def object_schema(schema: dict) -> tuple[dict, bool]:
    """The schema as an object schema (what APIs constrain best, and what a tool input
    must be); any other schema is wrapped under "value". Returns (schema, wrapped)."""
    if isinstance(schema, dict) and (schema.get("type") == "object" or (
            "type" not in schema and "properties" in schema)):
        return schema, False
    return {"type": "object", "properties": {"value": schema}, "required": ["value"],
            "additionalProperties": False}, True



def body_message(body) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
        return ""
    return body if isinstance(body, str) else ""



def retry_after_seconds(headers) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or retry-after-ms."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())



def clip(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
