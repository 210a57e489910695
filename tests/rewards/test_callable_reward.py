"""CallableReward: sync/async callables, validation, errors, cancellation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from backends.conformance import assert_one_line

from spex_graph.errors import BackendRequestError, RequestCancelledError
from spex_graph.rewards.base import RewardModel, ScoreRequest
from spex_graph.rewards.callable import CallableReward


def sreq(request_id: str = "c") -> ScoreRequest:
    return ScoreRequest(question="q", steps=("a", "bb"), request_id=request_id)


async def test_async_sync_and_callable_objects() -> None:
    async def async_len(r: ScoreRequest) -> float:
        return len(r.steps[-1]) / 10

    main = threading.get_ident()
    threads: list[int] = []

    def sync_len(r: ScoreRequest) -> float:
        threads.append(threading.get_ident())
        return len(r.steps[-1]) / 4

    class Scorer:
        async def __call__(self, r: ScoreRequest) -> float:
            return 0.25

    for fn, expected in ((async_len, 0.2), (sync_len, 0.5), (Scorer(), 0.25)):
        reward = CallableReward(fn)
        assert isinstance(reward, RewardModel)
        assert await reward.score(sreq()) == expected
    assert threads and threads[0] != main  # sync callables run in a worker thread
    assert CallableReward(async_len).name.endswith("async_len")
    assert await CallableReward(lambda r: np.float32(0.5)).score(sreq()) == 0.5
    assert await CallableReward(lambda r: True).score(sreq()) == 1.0
    assert await CallableReward(lambda r: 0).score(sreq()) == 0.0


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), float("inf"), "0.5", None, [0.5]])
async def test_invalid_results_name_the_callable(bad: Any) -> None:
    def my_verifier(r: ScoreRequest) -> Any:
        return bad

    with pytest.raises(BackendRequestError) as info:
        await CallableReward(my_verifier).score(sreq("req-9"))
    assert_one_line(info.value)
    assert "my_verifier" in str(info.value) and "[0, 1]" in str(info.value)
    assert "req-9" in str(info.value)


async def test_exceptions_become_one_line_errors() -> None:
    def broken(r: ScoreRequest) -> float:
        raise KeyError("missing\nkey")

    with pytest.raises(BackendRequestError) as info:
        await CallableReward(broken, name="verifier").score(sreq())
    assert_one_line(info.value)
    assert "verifier raised KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


async def test_cancel_and_caller_cancellation() -> None:
    started = asyncio.Event()

    async def slow(r: ScoreRequest) -> float:
        started.set()
        await asyncio.sleep(10)
        return 1.0

    reward = CallableReward(slow)
    task = asyncio.create_task(reward.score(sreq("slow")))
    await started.wait()
    await reward.cancel("slow")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 1.0)
    await reward.cancel("never-seen")

    started.clear()
    outer = asyncio.create_task(reward.score(sreq("outer")))
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await reward.aclose()


def test_not_callable() -> None:
    with pytest.raises(TypeError):
        CallableReward(0.5)  # type: ignore[arg-type]
