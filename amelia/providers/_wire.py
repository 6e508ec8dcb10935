"""Wire-format helpers shared by the HTTP providers (openai, anthropic).

Servers and HTTP libraries quote what they were sent, the key included (an illegal
header value is printed whole), so every message made here goes through `safetext`:
the key is redacted first, in all its forms, and only then is the text cut.
"""

from __future__ import annotations

import email.utils
import threading
import time

from ..safetext import add_secret, redact, shorten
from . import ProviderBase, ProviderError


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


CLIP = 300  # characters of a server's text in a message


def clip(text: str, limit: int = CLIP, secrets=()) -> str:
    """One line of at most `limit` characters, every known secret (and `secrets`)
    redacted before the cut: a key cut in half is not recognised afterwards."""
    return shorten(text, limit, secrets)


class SDKProvider(ProviderBase):
    """A provider backed by a vendor SDK client: made on first use, shared by threads.

    Subclasses set `name`, `default_model` and `make_client(**kwargs)`.
    """

    default_model = ""
    sdk = None  # the vendor SDK module
    api_name = ""  # how messages name the vendor's API when no base_url is set

    def __init__(self, config, env):
        super().__init__(config, env)
        self._client = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.config.model or self.default_model

    def _who(self) -> str:
        return f"{self.name} ({self.model})"

    def make_client(self, **kwargs):
        raise NotImplementedError

    def api_key(self) -> str | None:
        """The key, trimmed (a pasted key often ends in a line break), and registered as
        a secret: no message, log or record shows it from then on."""
        raw = super().api_key()
        if not raw:
            return raw
        add_secret(raw)
        add_secret(raw.strip())
        return raw.strip()

    def client(self):
        """The SDK client, made on first use (a missing key is an error then)."""
        with self._lock:
            if self._client is None:
                var = self.config.key_env()
                key = self.api_key()
                if var and not key:
                    raise ProviderError(f"{self._who()}: {var} is not set; put the API key in "
                                        f"the environment or in .env")
                if key and any(c.isspace() or not c.isprintable() for c in key):
                    # An HTTP library would refuse the header and quote it whole.
                    raise ProviderError(f"{self._who()}: the API key in {var} has a line break, "
                                        f"space or control character inside; check its value "
                                        f"in the environment or in .env")
                # Always an explicit key (a placeholder for a keyless local server): the
                # SDK then reads no credentials of its own. Retries are ours.
                kwargs = {"api_key": key or "not-needed", "max_retries": 0,
                          "timeout": self.config.timeout}
                if self.config.base_url:
                    kwargs["base_url"] = self.config.base_url
                self._client = self.make_client(**kwargs)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _secrets(self) -> tuple:
        raw = super().api_key()
        return (raw,) if raw else ()

    def _scrub(self, message: str) -> str:
        """Never let the key into a message (servers echo it whole, in parts, or masked)."""
        return redact(message, self._secrets())

    def _clip(self, text: str) -> str:
        return clip(text, CLIP, self._secrets())

    def status_error(self, status: int, message: str, headers) -> ProviderError:
        """An HTTP error status as one attempt's ProviderError: retryable or not, and why."""
        who = self._who()
        var = self.config.key_env()
        detail = f": {self._clip(message)}" if message else ""
        if status == 401:  # no server text here: it may echo part of the key
            text = (f"the API key in {var} was rejected (401)" if var else
                    f"the server at {self.config.base_url} refused the request as unauthorized "
                    f"(401); set api_key_env: to the variable holding its key")
            return ProviderError(f"{who}: {text}", status=status)
        if status == 403:
            text = (f"the API key in {var} is not allowed to do this (403){detail}" if var
                    else f"permission denied (403){detail}")
            return ProviderError(self._scrub(f"{who}: {text}"), status=status)
        if status == 404:
            where = " and base_url" if self.config.base_url else ""
            return ProviderError(self._scrub(f"{who}: not found (404){detail}; check the model id"
                                             f"{where}"), status=status)
        if status in (408, 409, 429) or status >= 500:
            what = {429: "rate limited", 529: "overloaded"}.get(status, "server error")
            return ProviderError(self._scrub(f"{who}: {what} ({status}){detail}"), retryable=True,
                                 retry_after=retry_after_seconds(headers), status=status)
        return ProviderError(self._scrub(f"{who}: the request was rejected ({status}){detail}"),
                             status=status)

    def items(self, stream):
        """The stream's events; a failure while reading it becomes a ProviderError (an
        exception from on_text, raised in the caller's loop, passes through untouched)."""
        it = iter(stream)
        errors = transport_errors(self.sdk)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except errors as e:
                raise self.error(e) from None
            yield item

    def status_of(self, e) -> int:
        """The HTTP status an SDK status error stands for."""
        return e.status_code

    def error(self, e: Exception) -> ProviderError:
        """Any failure of a call or its stream as one attempt's ProviderError."""
        sdk = self.sdk
        who = self._who()
        where = self.config.base_url or self.api_name
        if isinstance(e, sdk.APITimeoutError) or "Timeout" in type(e).__name__:
            return ProviderError(f"{who}: no answer from {where} within "
                                 f"{self.config.timeout:g} s (timeout)", retryable=True)
        if isinstance(e, sdk.APIStatusError):
            return self.status_error(self.status_of(e), body_message(e.body),
                                     getattr(e.response, "headers", None))
        if isinstance(e, sdk.APIConnectionError):
            cause = e.__cause__ or e.__context__
            detail = f": {self._clip(str(cause))}" if cause and str(cause) else ""
            return ProviderError(self._scrub(f"{who}: could not reach {where} or the connection "
                                             f"broke{detail}"), retryable=True)
        if isinstance(e, sdk.APIError):  # an error event inside the stream
            return ProviderError(self._scrub(f"{who}: the server reported an error mid-answer: "
                                             f"{self._clip(body_message(e.body) or e.message)}"),
                                 retryable=True)
        if isinstance(e, ValueError):
            return ProviderError(self._scrub(f"{who}: the server sent a malformed answer: "
                                             f"{self._clip(str(e))}"), retryable=True)
        return ProviderError(self._scrub(f"{who}: the connection broke: "
                                         f"{type(e).__name__}: {self._clip(str(e))}"),
                             retryable=True)


def transport_errors(sdk) -> tuple:
    """What a failed call or a broken stream raises: the SDK's errors, transport errors."""
    errs = [sdk.APIError, OSError, ValueError]  # ValueError: a malformed event
    for name in ("httpx2", "httpx"):
        try:
            errs.append(__import__(name).HTTPError)
        except ImportError:
            pass
    return tuple(errs)
