"""The retry policy on its own: what is retried, how long it waits, the deadline."""

from __future__ import annotations

import email.utils
import random
from typing import Any

import pytest

from spex_graph.backends.retry import (
    RetryPolicy,
    call_with_retry,
    is_retryable,
    parse_retry_after,
)
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    TransientBackendError,
)


def test_parse_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(10.0)


def test_what_is_retryable() -> None:
    rejected = BackendRequestError("HTTP 400")
    rejected.retryable = False
    assert is_retryable(TransientBackendError("429"))
    assert is_retryable(BackendRequestError("HTTP 500"))
    assert not is_retryable(rejected)
    assert not is_retryable(BackendUnavailableError("cannot start the engine"))
    assert not is_retryable(ConfigError("bad option"))
    assert not is_retryable(TimeoutError())


def test_delay_grows_is_capped_and_follows_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=3.0, max_retry_after_s=7.0)
    rng = random.Random(0)
    err = BackendRequestError("500")
    assert all(policy.delay(0, err, rng) <= 1.0 for _ in range(50))
    assert all(policy.delay(5, err, rng) <= 3.0 for _ in range(50))
    assert policy.delay(0, TransientBackendError("429", retry_after_s=2.0), rng) == 2.0
    assert policy.delay(0, TransientBackendError("429", retry_after_s=60.0), rng) == 7.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


async def test_retries_until_success_with_fresh_attempt_numbers() -> None:
    clock = Clock()
    seen: list[int] = []

    async def call(attempt: int) -> str:
        seen.append(attempt)
        if attempt < 2:
            raise TransientBackendError("reset", retry_after_s=0.25)
        return "ok"

    out = await call_with_retry(call, RetryPolicy(), clock=clock, sleep=clock.sleep)
    assert out == "ok" and seen == [0, 1, 2] and clock.waits == [0.25, 0.25]


async def test_gives_up_after_attempts_and_on_permanent_errors() -> None:
    clock = Clock()
    calls: list[Any] = []

    async def broken(attempt: int) -> None:
        calls.append(attempt)
        raise BackendRequestError("HTTP 500")

    with pytest.raises(BackendRequestError):
        await call_with_retry(broken, RetryPolicy(attempts=3), clock=clock, sleep=clock.sleep)
    assert calls == [0, 1, 2]

    calls.clear()
    rejected = BackendRequestError("HTTP 404")
    rejected.retryable = False

    async def missing(attempt: int) -> None:
        calls.append(attempt)
        raise rejected

    with pytest.raises(BackendRequestError):
        await call_with_retry(missing, RetryPolicy(), clock=clock, sleep=clock.sleep)
    assert calls == [0]


async def test_never_waits_past_the_deadline() -> None:
    clock = Clock()

    async def limited(attempt: int) -> None:
        raise TransientBackendError("429", retry_after_s=10.0)

    with pytest.raises(TransientBackendError):
        await call_with_retry(limited, RetryPolicy(), deadline=5.0, clock=clock, sleep=clock.sleep)
    assert clock.waits == []
