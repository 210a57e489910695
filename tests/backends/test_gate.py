"""The client-side priority gate: primaries take the next free slot."""

from __future__ import annotations

import asyncio

import pytest

from spex_graph.backends.gate import PRIMARY_PRIORITY, PriorityGate

PRIMARY = PRIMARY_PRIORITY


async def _hold(
    gate: PriorityGate, name: str, priority: int, order: list[str], hold: asyncio.Event
):
    async with gate.slot(priority, tag=name):
        order.append(name)
        await hold.wait()


def test_a_primary_overtakes_waiting_speculation() -> None:
    async def main() -> list[str]:
        gate = PriorityGate(2, reserve=0)
        order: list[str] = []
        hold = asyncio.Event()
        tasks = [asyncio.ensure_future(_hold(gate, f"s{i}", 0, order, hold)) for i in range(5)]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(_hold(gate, "p", PRIMARY, order, hold)))
        await asyncio.sleep(0)
        assert order == ["s0", "s1"] and gate.waiting == 4
        hold.set()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["s0", "s1", "p", "s2", "s3", "s4"]


def test_reserved_slots_are_for_primaries_only() -> None:
    async def main() -> None:
        gate = PriorityGate(4)  # reserve 1
        order: list[str] = []
        hold = asyncio.Event()
        tasks = [asyncio.ensure_future(_hold(gate, f"s{i}", 0, order, hold)) for i in range(6)]
        await asyncio.sleep(0)
        assert order == ["s0", "s1", "s2"] and gate.speculative_held == 3
        tasks.append(asyncio.ensure_future(_hold(gate, "p", PRIMARY, order, hold)))
        await asyncio.sleep(0)
        assert order[-1] == "p"  # no wait at all: the reserved slot was free
        hold.set()
        await asyncio.gather(*tasks)
        assert gate.held == 0 and gate.speculative_held == 0

    asyncio.run(main())


def test_promotion_and_cancellation_keep_the_count_right() -> None:
    async def main() -> list[str]:
        gate = PriorityGate(1)
        order: list[str] = []
        hold = asyncio.Event()
        first = asyncio.ensure_future(_hold(gate, "a", 0, order, hold))
        others = [asyncio.ensure_future(_hold(gate, n, 0, order, hold)) for n in "bcd"]
        await asyncio.sleep(0)
        assert gate.promote("d", PRIMARY) == 1
        others[0].cancel()
        await asyncio.sleep(0)
        hold.set()
        await asyncio.gather(first, *others, return_exceptions=True)
        assert gate.held == 0 and gate.waiting == 0
        return order

    assert asyncio.run(main()) == ["a", "d", "c"]


@pytest.mark.parametrize("slots", [1, 3])
def test_the_gate_never_exceeds_its_slots(slots: int) -> None:
    async def main() -> int:
        gate = PriorityGate(slots)
        live = peak = 0

        async def work(priority: int) -> None:
            nonlocal live, peak
            async with gate.slot(priority):
                live += 1
                peak = max(peak, live)
                await asyncio.sleep(0.001)
                live -= 1

        await asyncio.gather(*(work(PRIMARY if i % 3 == 0 else 0) for i in range(20)))
        return peak

    assert asyncio.run(main()) == slots
