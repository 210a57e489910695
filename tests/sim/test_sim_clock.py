"""The virtual-time event loop."""

from __future__ import annotations

import asyncio
import time

from spex_graph.sim import VirtualClock, run_virtual, virtual_now


def test_an_hour_of_sleep_takes_no_real_time_and_exactly_an_hour_of_clock() -> None:
    async def main() -> float:
        t0 = virtual_now()
        await asyncio.sleep(3600)
        return virtual_now() - t0

    start = time.perf_counter()
    assert run_virtual(main()) == 3600.0
    assert time.perf_counter() - start < 0.5


def test_gather_of_sleeps_finishes_at_the_longest() -> None:
    async def main() -> tuple[float, list[float]]:
        done: list[float] = []

        async def nap(s: float) -> None:
            await asyncio.sleep(s)
            done.append(virtual_now())

        await asyncio.gather(nap(2.5), nap(7.0), nap(0.25))
        return virtual_now(), done

    end, done = run_virtual(main())
    assert end == 7.0
    assert done == [0.25, 2.5, 7.0]


def test_clock_callable_and_executor_jobs_are_deterministic() -> None:
    async def main() -> tuple[float, int]:
        clock = VirtualClock()
        await asyncio.sleep(1.5)
        value = await asyncio.get_running_loop().run_in_executor(None, lambda: 41 + 1)
        return clock(), value

    assert run_virtual(main()) == (1.5, 42)
    assert run_virtual(main(), start=10.0) == (11.5, 42)


def test_wait_for_timeouts_fire_in_virtual_time() -> None:
    async def main() -> float:
        try:
            await asyncio.wait_for(asyncio.sleep(100), 30)
        except TimeoutError:
            return virtual_now()
        return -1.0

    assert run_virtual(main()) == 30.0
