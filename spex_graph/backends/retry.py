"""Retrying backend calls: which failures are retried, and how long to wait.

Retried: `TransientBackendError` (HTTP 429 and 502-504, a connection reset or
dropped mid-answer, an engine restarting) and `BackendRequestError` unless it
is marked not retryable (HTTP 4xx other than 408/429: the same request would
be refused again). Not retried: timeouts (the caller's deadline is spent),
cancellations, errors of the caller's own code.

Waits grow exponentially with full jitter (`base_delay_s * 2**attempt`, at
most `max_delay_s`); a server's Retry-After replaces the computed wait (capped
at `max_retry_after_s`). Every wait stays inside the caller's deadline: a call
never runs past it because of retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from spex_graph.errors import BackendRequestError, TransientBackendError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed backend call is tried again.

    Attributes:
        attempts: tries in all (1 = no retry).
        base_delay_s: wait before the first retry (before jitter).
        max_delay_s: cap on the computed wait between tries.
        max_retry_after_s: cap on a server's Retry-After hint.
    """

    attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float:
        """Seconds to wait before try `attempt + 1` after `error` (attempt counts from 0)."""
        hint = getattr(error, "retry_after_s", None)
        if hint is not None and hint >= 0:
            return min(float(hint), self.max_retry_after_s)
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


NO_RETRY = RetryPolicy(attempts=1)


def is_retryable(error: BaseException) -> bool:
    """Whether `error` may pass if the same request is sent again."""
    if isinstance(error, TransientBackendError):
        return True
    return isinstance(error, BackendRequestError) and error.retryable


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


async def call_with_retry(
    call: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `call(attempt)` until it succeeds, fails for good, or tries run out.

    `deadline` (a `clock` reading) bounds the waits: when the next wait would end
    past it, the last error is raised instead.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await call(attempt)
        except Exception as error:
            if not is_retryable(error) or attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt, error, rng)
            if deadline is not None and clock() + wait >= deadline:
                raise
        await sleep(wait)
        attempt += 1
