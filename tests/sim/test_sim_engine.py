"""The simulated continuous-batching engine."""

from __future__ import annotations

import asyncio
import dataclasses
import gc

import pytest

from spex_graph.errors import RequestCancelledError
from spex_graph.sim import H100_7B, SimEngine, run_virtual, virtual_now

TINY = dataclasses.replace(H100_7B, name="tiny", kv_capacity_tokens=1000, max_running_requests=8)


def test_single_request_latency_is_prefill_plus_decode_steps() -> None:
    p = H100_7B
    prompt, out = 500, 100

    async def main() -> float:
        engine = SimEngine(p)
        r = await engine.generate("a", prompt, out)
        return r.finished_at - r.submitted_at

    # hand-computed: iteration 1 prefills 500 tokens (compute-bound, 50% MFU) and
    # yields token 1; iterations 2..100 each decode one token reading weights + KV.
    flops = 2 * 7.62e9
    bandwidth = 3.35e12 * 0.80
    prefill = 0.0003 + max((15.24e9 + 57344 * 500) / bandwidth, flops * 500 / (989.5e12 * 0.5))
    decode = sum(0.0003 + (15.24e9 + 57344 * (500 + k)) / bandwidth for k in range(1, out))
    assert run_virtual(main()) == pytest.approx(prefill + decode, rel=1e-12)
    assert prefill == pytest.approx(0.0157, abs=2e-4)  # ~32k prefill tok/s
    assert decode / (out - 1) == pytest.approx(0.00600, abs=5e-5)  # ~6 ms/token at bs=1


def test_a_batch_of_eight_takes_far_less_than_eight_times_one() -> None:
    async def main() -> tuple[float, float, int]:
        engine = SimEngine(H100_7B)
        t0 = virtual_now()
        await engine.generate("one", 300, 200)
        one = virtual_now() - t0
        t1 = virtual_now()
        await asyncio.gather(*(engine.generate(f"b{i}", 300, 200) for i in range(8)))
        return one, virtual_now() - t1, engine.stats.max_batch

    one, eight, largest = run_virtual(main())
    assert eight < 1.3 * one
    assert largest == 8


def test_kv_capacity_forces_queueing() -> None:
    async def main() -> list[tuple[float, float]]:
        engine = SimEngine(TINY, prefix_cache=False)
        results = await asyncio.gather(*(engine.generate(f"r{i}", 300, 100) for i in range(4)))
        assert engine.load().kv_used_tokens == 0
        return [(r.started_at, r.finished_at) for r in results]

    spans = run_virtual(main())
    # 400 tokens each in a 1000-token pool: two run, the others wait for them
    assert spans[0][0] == spans[1][0] == 0.0
    assert spans[2][0] >= spans[0][1] and spans[3][0] >= spans[1][1]


def test_prefix_cache_cuts_prefill_for_siblings() -> None:
    async def main() -> tuple[list[int], int]:
        engine = SimEngine(H100_7B)
        prefix = [("q", 800), ("q/step1", 900)]
        first = await engine.generate("p", 900, 50, prefix=prefix, finish_key="q/step1/a")
        kids = await asyncio.gather(
            *(
                engine.generate(f"k{i}", 950, 50, prefix=[*prefix, ("q/step1/a", 950)])
                for i in range(4)
            )
        )
        return [first.cached_tokens, *(k.cached_tokens for k in kids)], engine.stats.prefill_tokens

    cached, prefill = run_virtual(main())
    assert cached == [0, 949, 949, 949, 949]
    assert prefill == 900 + 4


def test_abort_frees_capacity_and_the_waiter_gets_cancelled() -> None:
    async def main() -> tuple[float, float]:
        engine = SimEngine(TINY, prefix_cache=False)
        hog = asyncio.ensure_future(engine.generate("hog", 400, 500))
        queued = asyncio.ensure_future(engine.generate("queued", 600, 10))
        await asyncio.sleep(0.1)
        assert engine.load().running == 1 and engine.load().waiting == 1
        t_abort = virtual_now()
        assert engine.abort("hog")
        with pytest.raises(RequestCancelledError):
            await hog
        result = await queued
        assert engine.abort("nope") is False
        assert engine.was_aborted("hog")
        return t_abort, result.started_at

    t_abort, started = run_virtual(main())
    assert t_abort <= started < t_abort + 0.05


def test_higher_priority_is_admitted_first() -> None:
    async def main() -> list[str]:
        engine = SimEngine(dataclasses.replace(TINY, max_running_requests=1))
        order: list[str] = []

        async def run(rid: str, priority: int) -> None:
            await engine.generate(rid, 10, 5, priority=priority)
            order.append(rid)

        await asyncio.gather(run("low1", 0), run("low2", 0), run("high", 5))
        return order

    # all three arrive before the first iteration: the primary (high) goes first
    assert run_virtual(main()) == ["high", "low1", "low2"]


async def _serve(engine: SimEngine, first: int, count: int) -> int:
    """`count` requests in waves of 100, policy and reward alternating; every 7th
    is aborted mid-run. Returns how many aborts found their request."""
    aborted = 0
    for wave in range(first, first + count, 100):
        ids = range(wave, min(first + count, wave + 100))
        jobs = [
            asyncio.ensure_future(
                engine.generate(f"r{i}", 40, 20 * (i % 2), kind=("reward", "policy")[i % 2])
            )
            for i in ids
        ]
        await asyncio.sleep(0.05)
        for i in ids:
            if i % 7 == 0:
                aborted += engine.abort(f"r{i}")
        await asyncio.gather(*jobs, return_exceptions=True)
    return aborted


def test_aborted_tokens_are_totalled_by_kind() -> None:
    async def main() -> SimEngine:
        engine = SimEngine(TINY)
        await _serve(engine, 0, 300)
        return engine

    engine = run_virtual(main())
    assert len(engine.log) == 300
    for kind in ("policy", "reward"):
        aborted = [log for log in engine.log if log.kind == kind and log.outcome == "aborted"]
        assert aborted
        assert engine.stats.aborted_tokens[kind] == sum(log.generated_tokens for log in aborted)
    assert engine.stats.aborted_tokens["policy"] > 0
    assert engine.stats.mean_batch > 1 and engine.stats.max_batch <= TINY.max_running_requests


def test_a_long_lived_engine_keeps_a_bounded_log() -> None:
    """Thousands of requests leave the engine's memory flat: `log` keeps the last
    `log_window` requests and the stats keep totals, not one entry per request."""

    async def main() -> tuple[SimEngine, int, int, int]:
        engine = SimEngine(TINY, log_window=50)
        aborted = await _serve(engine, 0, 200)
        gc.collect()
        before = len(gc.get_objects())
        aborted += await _serve(engine, 200, 2000)
        gc.collect()
        return engine, aborted, before, len(gc.get_objects())

    engine, aborted, before, after = run_virtual(main())
    assert [log.request_id for log in engine.log] == [f"r{i}" for i in range(2150, 2200)]
    assert engine.stats.finished + engine.stats.aborted == 2200
    assert engine.stats.aborted == aborted > 200
    assert after - before < 200, f"{after - before} objects more after 2,000 more requests"
    assert engine.was_aborted("r2198") and not engine.was_aborted("r2199")
