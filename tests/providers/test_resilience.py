"""Retries, backoff, circuit breaker and limiter: fake provider, fake clock, no sleeping."""

from __future__ import annotations

import threading
import time

import pytest

from amelia.providers import Completion, ModelConfig, ProviderBase, ProviderError, Request
from amelia.providers import resilience
from amelia.providers.resilience import (CLOSED, HALF_OPEN, OPEN, LIMITER, CircuitBreaker,
                                         Limiter, breaker_for, breaker_key, call)

REQ = Request(system="s", prompt="p")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeProvider(ProviderBase):
    """Plays a script: each item is an exception to raise or a text to return."""

    name = "fake"

    def __init__(self, script):
        super().__init__(ModelConfig(name="m", provider="fake"), {})
        self.script = list(script)
        self.calls = 0

    def complete(self, request, on_text=None):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if on_text:
            on_text(item)
        return Completion(text=item)


def retryable(msg="503 service unavailable", retry_after=None):
    return ProviderError(msg, retryable=True, retry_after=retry_after, status=503)


def fresh_breaker(clock=None):
    return CircuitBreaker(clock=clock or Clock(), name="fake")


# -- circuit breaker -------------------------------------------------------------------
def fail(b):
    b.after(b.before(), False)


def succeed(b):
    b.after(b.before(), True)


def test_breaker_opens_after_five_failures_and_fails_fast():
    clock = Clock()
    b = CircuitBreaker(clock=clock, name="openai")
    for _ in range(4):
        fail(b)
    assert b.state == CLOSED
    succeed(b)  # a success resets the run of failures
    for _ in range(4):
        fail(b)
    assert b.state == CLOSED
    fail(b)
    assert b.state == OPEN
    with pytest.raises(ProviderError) as e:
        b.before()
    assert e.value.message == "circuit open for openai: 5 failures in a row; retrying after 60s"
    assert not e.value.retryable
    clock.now += 59.5
    with pytest.raises(ProviderError, match="retrying after 1s"):
        b.before()
    clock.now += 0.5
    assert b.state == HALF_OPEN


def test_breaker_defaults_are_the_design_figures():
    b = CircuitBreaker()
    assert (b.threshold, b.close_after, b.open_seconds, b.half_open_calls) == (5, 2, 60.0, 3)


def test_half_open_admits_three_and_closes_after_two_successes():
    clock = Clock()
    b = CircuitBreaker(clock=clock)
    for _ in range(5):
        fail(b)
    clock.now += 60
    tickets = [b.before() for _ in range(3)]
    assert all(t.trial for t in tickets)
    with pytest.raises(ProviderError, match="half-open") as e:
        b.before()  # the fourth concurrent call is refused
    assert not e.value.retryable
    b.after(tickets[0], True)
    assert b.state == HALF_OPEN
    t4 = b.before()  # a finished trial frees its slot
    assert t4.trial
    b.after(tickets[1], True)
    assert b.state == CLOSED
    assert b.failures == 0
    # trials admitted before the close finish without disturbing the closed circuit
    b.after(tickets[2], False)
    b.after(t4, False)
    assert b.state == CLOSED
    assert not b.before().trial


def test_failure_in_half_open_reopens():
    clock = Clock()
    b = CircuitBreaker(clock=clock)
    for _ in range(5):
        fail(b)
    clock.now += 60
    t1, t2 = b.before(), b.before()
    b.after(t1, True)
    b.after(t2, False)
    assert b.state == OPEN
    with pytest.raises(ProviderError, match="retrying after 60s"):
        b.before()
    clock.now += 60
    assert b.state == HALF_OPEN
    succeed(b)
    succeed(b)
    assert b.state == CLOSED


def test_non_retryable_outcomes_are_neutral():
    clock = Clock()
    b = CircuitBreaker(clock=clock)
    for _ in range(4):
        fail(b)
    b.after(b.before(), None)
    assert b.failures == 4 and b.state == CLOSED
    fail(b)
    assert b.state == OPEN
    clock.now += 60
    t = b.before()
    b.after(t, None)  # frees the trial slot, no transition
    assert b.state == HALF_OPEN
    assert [b.before().trial for _ in range(3)] == [True] * 3


def test_breaker_is_thread_safe():
    b = CircuitBreaker(threshold=10_000)
    def work():
        for _ in range(1000):
            fail(b)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.failures == 8000


def test_breaker_registry_is_per_key():
    resilience.reset_breakers()
    a = breaker_for(breaker_key("openai", "http://localhost:11434/v1"))
    assert a is breaker_for("openai http://localhost:11434/v1")
    assert a is not breaker_for(breaker_key("openai"))
    assert breaker_for("anthropic").name == "anthropic"
    resilience.reset_breakers()
    assert breaker_for("anthropic") is not a


# -- call() ----------------------------------------------------------------------------
def test_success_first_time():
    p = FakeProvider(["hello"])
    seen = []
    r = call(p, REQ, retries=3, breaker=fresh_breaker(), on_text=seen.append,
             sleep=pytest.fail)
    assert r.completion.text == "hello"
    assert (r.attempts, r.retries, r.waited) == (1, 0, 0.0)
    assert seen == ["hello"]
    assert r.latency >= 0


def test_exponential_backoff_values():
    p = FakeProvider([retryable()] * 6 + ["ok"])
    slept = []
    r = call(p, REQ, retries=6, breaker=CircuitBreaker(threshold=100), sleep=slept.append,
             rng=lambda: 1.0)
    assert slept == [1, 2, 4, 8, 16, 30]
    assert (r.attempts, r.retries, r.waited) == (7, 6, 61)
    slept.clear()
    call(FakeProvider([retryable()] * 3 + ["ok"]), REQ, retries=3, breaker=fresh_breaker(),
         sleep=slept.append, rng=lambda: 0.0)
    assert slept == [0.5, 1.0, 2.0]
    assert resilience.backoff(2, rng=lambda: 0.5) == 4 * 0.75


def test_retry_after_is_honoured_and_capped():
    p = FakeProvider([retryable("429 rate limited", retry_after=7.5),
                      retryable("429", retry_after=600), "ok"])
    slept = []
    r = call(p, REQ, retries=3, breaker=fresh_breaker(), sleep=slept.append, rng=lambda: 1.0)
    assert slept == [7.5, 120]
    assert r.completion.text == "ok" and r.attempts == 3 and r.waited == 127.5


def test_exhaustion_raises_the_last_error_with_the_attempt_count():
    last = retryable("500 internal error")
    p = FakeProvider([retryable("502 bad gateway"), retryable(), last])
    slept = []
    with pytest.raises(ProviderError) as e:
        call(p, REQ, retries=2, breaker=fresh_breaker(), sleep=slept.append)
    assert e.value is last
    assert str(e.value) == e.value.message == "500 internal error (gave up after 3 attempts)"
    assert e.value.status == 503
    assert p.calls == 3 and len(slept) == 2
    with pytest.raises(ProviderError, match=r"\(gave up after 1 attempt\)$"):
        call(FakeProvider([retryable()]), REQ, retries=0, breaker=fresh_breaker(),
             sleep=pytest.fail)


def test_non_retryable_error_is_not_retried():
    err = ProviderError("401 invalid x-api-key", retryable=False, status=401)
    p = FakeProvider([err, "never"])
    b = fresh_breaker()
    with pytest.raises(ProviderError) as e:
        call(p, REQ, retries=3, breaker=b, sleep=pytest.fail)
    assert e.value is err and e.value.message == "401 invalid x-api-key"
    assert p.calls == 1 and b.failures == 0


def test_other_exceptions_propagate_and_free_the_trial_slot():
    clock = Clock()
    b = CircuitBreaker(clock=clock)
    for _ in range(5):
        fail(b)
    clock.now += 60
    for _ in range(5):
        with pytest.raises(KeyError):
            call(FakeProvider([KeyError("bug")]), REQ, retries=3, breaker=b, sleep=pytest.fail)
    assert b.state == HALF_OPEN


def test_call_reports_to_the_breaker_and_open_circuit_fails_fast():
    clock = Clock()
    b = CircuitBreaker(clock=clock, name="anthropic")
    p = FakeProvider([retryable()] * 5 + ["ok", "ok"])
    with pytest.raises(ProviderError) as e:
        call(p, REQ, retries=10, breaker=b, sleep=lambda s: None)
    # the fifth failure opened the circuit; the sixth attempt was refused without a call
    assert p.calls == 5
    assert e.value.message.startswith("circuit open for anthropic: 5 failures in a row")
    assert not e.value.retryable
    clock.now += 60
    assert call(p, REQ, retries=0, breaker=b).completion.text == "ok"
    assert b.state == HALF_OPEN
    call(p, REQ, retries=0, breaker=b)
    assert b.state == CLOSED


# -- limiter -----------------------------------------------------------------------------
def run_threads(n, target):
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)


def test_limiter_caps_concurrency_per_model():
    lim = Limiter()
    lock = threading.Lock()
    now = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}

    def use(name, limit):
        with lim.slot(name, limit) as slot:
            assert slot.waited >= 0
            with lock:
                now[name] += 1
                peak[name] = max(peak[name], now[name])
            time.sleep(0.02)
            with lock:
                now[name] -= 1

    run_threads(8, lambda: use("a", 2))
    run_threads(6, lambda: use("b", 1))
    assert peak == {"a": 2, "b": 1}
    assert lim.running("a") == 0


def test_limiter_unlimited_and_independent_models():
    lim = Limiter()
    barrier = threading.Barrier(6, timeout=5)

    def use():
        with lim.slot("x", None):
            barrier.wait()  # all six must be inside at once

    run_threads(6, use)
    with lim.slot("x", 1):
        with lim.slot("y", 1):  # another model is not blocked by x
            assert lim.running("x") == lim.running("y") == 1
    with pytest.raises(ValueError):
        with lim.slot("x", 0):
            pass


def test_limiter_reports_wait():
    lim = Limiter()
    release = threading.Event()
    entered = threading.Event()

    def holder():
        with lim.slot("m", 1):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    entered.wait(5)
    threading.Timer(0.1, release.set).start()
    with lim.slot("m", 1) as slot:
        assert slot.waited >= 0.05
    t.join()
    assert isinstance(LIMITER, Limiter)
