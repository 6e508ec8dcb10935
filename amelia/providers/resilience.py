"""Retries, backoff, a circuit breaker and per-model concurrency limits (DESIGN §4).

A provider makes exactly one attempt per `complete()`; `call()` wraps that attempt the
same way for every provider:

- only `ProviderError.retryable` errors are retried, up to `retries` extra attempts;
- the wait before retry n (0-based) is `min(30, 2**n) * (0.5 + rng()/2)` seconds, or the
  server's Retry-After when it gave one (capped at 120 s);
- every outcome is reported to a `CircuitBreaker` (one per provider + base_url): 5 failures
  in a row open it, calls then fail fast for 60 s, after which 3 trial calls may run at
  once and 2 successes close it again, while a failed trial reopens it.

`Limiter` caps how many calls of one model run at once (`concurrency:`; 1 for `local`).
"""

from __future__ import annotations

import math
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from amelia.providers import Completion, ProviderError

MAX_BACKOFF = 30.0  # seconds: the exponential backoff stops growing here
MAX_RETRY_AFTER = 120.0  # seconds: a server's Retry-After is honoured up to this

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class Ticket:
    """Admission to one call: which breaker generation admitted it, and whether it is a
    half-open trial (which holds one of the `half_open_calls` slots until it finishes)."""

    generation: int
    trial: bool


class CircuitBreaker:
    """closed → open after `threshold` consecutive failures; open → half-open after
    `open_seconds`; half-open lets `half_open_calls` calls run at once, closes after
    `close_after` successes and reopens on a failure. Thread-safe.

    Only failures that say the service is in trouble count (retryable ProviderErrors:
    5xx, 429, timeouts, connection errors). A non-retryable error (a bad request, a bad
    key) means the service answered; it neither counts as a failure nor as a success.
    """

    def __init__(self, threshold: int = 5, close_after: int = 2, open_seconds: float = 60.0,
                 half_open_calls: int = 3, clock=time.monotonic, name: str = ""):
        self.threshold = threshold
        self.close_after = close_after
        self.open_seconds = open_seconds
        self.half_open_calls = half_open_calls
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._state = CLOSED
        self._generation = 0  # bumped on every state change; stale outcomes are ignored
        self._failures = 0  # consecutive failures
        self._successes = 0  # successes since half-open
        self._trials = 0  # half-open calls in flight
        self._opened_at = 0.0

    # -- state ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        with self._lock:
            self._tick()
            return self._state

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    def _tick(self) -> None:
        if self._state == OPEN and self.clock() - self._opened_at >= self.open_seconds:
            self._enter(HALF_OPEN)

    def _enter(self, state: str) -> None:
        self._state = state
        self._generation += 1
        self._successes = 0
        self._trials = 0
        if state == OPEN:
            self._opened_at = self.clock()
        elif state == CLOSED:
            self._failures = 0

    # -- admission and outcomes -------------------------------------------------------
    def before(self) -> Ticket:
        """Admit one call, or raise ProviderError (non-retryable) when the circuit is open
        or half-open with all its trial slots taken."""
        with self._lock:
            self._tick()
            who = self.name or "provider"
            if self._state == OPEN:
                left = max(0.0, self.open_seconds - (self.clock() - self._opened_at))
                n = self._failures
                raise ProviderError(
                    f"circuit open for {who}: {n} failure{'' if n == 1 else 's'} in a row; "
                    f"retrying after {math.ceil(left)}s", retryable=False)
            if self._state == HALF_OPEN:
                if self._trials >= self.half_open_calls:
                    raise ProviderError(
                        f"circuit half-open for {who}: {self._trials} trial calls already "
                        f"running after {self._failures} failures in a row", retryable=False)
                self._trials += 1
                return Ticket(self._generation, True)
            return Ticket(self._generation, False)

    def after(self, ticket: Ticket, ok: bool | None) -> None:
        """Report how an admitted call ended: True success, False failure, None neither
        (a non-retryable error, or an exception that is not a ProviderError)."""
        with self._lock:
            current = ticket.generation == self._generation
            if ticket.trial and current:
                self._trials -= 1
            if ok is True:
                if self._state != OPEN:  # a late success does not reset an open circuit
                    self._failures = 0
                if current and self._state == HALF_OPEN:
                    self._successes += 1
                    if self._successes >= self.close_after:
                        self._enter(CLOSED)
            elif ok is False:
                self._failures += 1
                if not current:
                    return  # a call admitted before the last state change
                if self._state == HALF_OPEN or (self._state == CLOSED
                                                and self._failures >= self.threshold):
                    self._enter(OPEN)


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(key: str) -> CircuitBreaker:
    """The process-wide breaker for `key` (provider + base_url), with DESIGN's figures."""
    with _BREAKERS_LOCK:
        b = _BREAKERS.get(key)
        if b is None:
            b = _BREAKERS[key] = CircuitBreaker(name=key)
        return b


def breaker_key(provider: str, base_url: str | None = None) -> str:
    """The registry key for a provider and (optional) base_url: "openai" or
    "openai http://localhost:11434/v1"."""
    return f"{provider} {base_url}" if base_url else provider


def reset_breakers() -> None:
    """Forget every breaker (tests; a long-lived watch process after a config change)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


# -- concurrency ----------------------------------------------------------------------
@dataclass
class Slot:
    """A held concurrency slot; `waited` is how long the call queued for it (seconds)."""

    name: str
    waited: float = 0.0


class Limiter:
    """Per-model concurrency: `with limiter.slot(name, limit):` blocks while `limit`
    calls of model `name` are running. limit None means unlimited. Thread-safe."""

    def __init__(self, clock=time.monotonic):
        self._cond = threading.Condition()
        self._running: dict[str, int] = {}
        self._clock = clock

    def running(self, name: str) -> int:
        with self._cond:
            return self._running.get(name, 0)

    @contextmanager
    def slot(self, name: str, limit: int | None):
        if limit is not None and limit < 1:
            raise ValueError(f"concurrency for model {name!r} must be at least 1, not {limit}")
        start = self._clock()
        with self._cond:
            while limit is not None and self._running.get(name, 0) >= limit:
                self._cond.wait()
            self._running[name] = self._running.get(name, 0) + 1
        held = Slot(name, self._clock() - start)
        try:
            yield held
        finally:
            with self._cond:
                self._running[name] -= 1
                if not self._running[name]:
                    del self._running[name]
                self._cond.notify_all()


LIMITER = Limiter()


# -- one call with retries --------------------------------------------------------------
@dataclass(frozen=True)
class CallResult:
    completion: Completion
    attempts: int  # attempts made, including the successful one
    retries: int  # attempts - 1
    latency: float  # seconds the successful attempt took
    waited: float  # seconds slept between attempts (backoff, Retry-After)


def backoff(n: int, rng=random.random) -> float:
    """The wait before retry n (0-based) when the server gave no Retry-After."""
    return min(MAX_BACKOFF, 1.0 * 2 ** n) * (0.5 + rng() / 2)


def call(provider, request, *, retries: int, breaker: CircuitBreaker, on_text=None,
         sleep=time.sleep, rng=random.random, clock=time.monotonic) -> CallResult:
    """provider.complete(request) with retries, backoff and the circuit breaker.

    Raises ProviderError: at once when it is not retryable (or the circuit is open);
    after `retries` extra attempts otherwise, with the attempt count in its message.
    An attempt that streamed some text and then failed is retried from the start, so
    on_text may see the beginning of an answer again.
    """
    attempts = 0
    waited = 0.0
    while True:
        ticket = breaker.before()
        attempts += 1
        start = clock()
        try:
            completion = provider.complete(request, on_text=on_text)
        except ProviderError as e:
            breaker.after(ticket, False if e.retryable else None)
            if not e.retryable:
                raise
            if attempts > retries:
                e.message = (f"{e.message} (gave up after {attempts} attempt"
                             f"{'' if attempts == 1 else 's'})")
                e.args = (e.message,)
                e.attempts = attempts
                raise
            if e.retry_after is not None:
                delay = min(MAX_RETRY_AFTER, max(0.0, float(e.retry_after)))
            else:
                delay = backoff(attempts - 1, rng)
            sleep(delay)
            waited += delay
            continue
        except BaseException:
            breaker.after(ticket, None)
            raise
        latency = clock() - start
        breaker.after(ticket, True)
        return CallResult(completion, attempts, attempts - 1, latency, waited)
