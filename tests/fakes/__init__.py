"""Fake OpenAI and Anthropic API servers for tests: real HTTP on 127.0.0.1, real wire formats.

Import as `from fakes import FakeOpenAI, FakeAnthropic, Reply` (NOT `tests.fakes`):
tests/ has no __init__.py, so pytest puts tests/ on sys.path (its conftest.py lives
there, which is also why `from conftest import ...` works); importing the same files
under two names would make two distinct `Reply` classes.

    from fakes import FakeOpenAI, Reply

    with FakeOpenAI("the default answer", latency=0.0, api_key="sk-test") as srv:
        srv.base_url            # "http://127.0.0.1:PORT/v1"  (FakeAnthropic: no /v1)
        srv.enqueue(Reply(status=429, retry_after=2), Reply(text="second try"))
        ...                     # point a client at srv.base_url
        srv.requests[-1].body   # the JSON body; .headers (lower-case names), .path, .method
        srv.calls()             # the POSTs only; srv.max_concurrent: peak overlap seen

`reply` (the default answer) may be a str, a callable(body) -> str | dict | Reply, or
None (a fixed text; a schema instance for structured requests). See Reply for the
scripted behaviours (errors, latency, hang, broken or truncated streams, usage).

As processes (for benchmarks and end-to-end tests of `amelia` as a subprocess):

    python tests/fakes/openai_server.py --port 0 --latency 1.0 [--reply TEXT | --reply-json JSON]
    python tests/fakes/anthropic_server.py --port 0 ...

print the base URL on the first line of stdout and serve until SIGTERM/SIGINT.
"""

from ._base import FakeServer, RecordedRequest, Reply, count_tokens, example_from_schema
from .anthropic_server import FakeAnthropic
from .openai_server import FakeOpenAI

__all__ = ["FakeAnthropic", "FakeOpenAI", "FakeServer", "RecordedRequest", "Reply",
           "count_tokens", "example_from_schema"]
