"""Client-side request gates that let primary work overtake speculation.

An HTTP client bounds the requests it has in flight (connection pools, server
queues). A FIFO semaphore there would make a primary request wait behind every
speculative request that reached the gate first, before any priority reaches
the server. `PriorityGate` instead hands each free slot to the best waiter
(highest priority, then first come), keeps `reserve` slots that only primary
requests may take, and lets a waiting request be promoted when a primary
request joins it.

Priorities: the dispatcher sends primary requests `PRIMARY_PRIORITY` above
speculative ones. The gap exceeds SGLang's default
`--priority-scheduling-preemption-threshold` (10), so a stock SGLang server
with `--enable-priority-scheduling` pre-empts running speculative requests for
a primary one when its batch is full (`schedule_policy.py::preempt_to_schedule`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

PRIMARY_PRIORITY = 100
"""Priority added to primary requests (speculative ones keep the request's own)."""


def is_primary(priority: int) -> bool:
    """Whether a request priority marks primary (non-speculative) work."""
    return priority >= PRIMARY_PRIORITY


@dataclass(order=True)
class _Waiter:
    sort_key: tuple[int, int]
    future: asyncio.Future[None] = field(compare=False)
    tag: str | None = field(compare=False, default=None)
    priority: int = field(compare=False, default=0)
    stale: bool = field(compare=False, default=False)


class PriorityGate:
    """At most `slots` holders; the best waiter gets the next free slot.

    Speculative holders (priority below `PRIMARY_PRIORITY`) may use at most
    `slots - reserve` slots, so a primary request finds a slot free whenever
    fewer than `reserve` primaries hold one.
    """

    def __init__(self, slots: int, reserve: int | None = None) -> None:
        """A gate with `slots` slots; `reserve` defaults to a quarter (>= 1 when slots > 1)."""
        self.slots = max(1, slots)
        default = max(1, self.slots // 4) if self.slots > 1 else 0
        self.reserve = min(self.slots - 1, default if reserve is None else max(0, reserve))
        self.held = 0
        self.speculative_held = 0
        self._heap: list[_Waiter] = []
        self._live: dict[int, _Waiter] = {}  # by id(future): the waiter's current entry
        self._granted: dict[int, int] = {}  # by id(future): the priority a slot was granted at
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._live)

    def _can_take(self, priority: int) -> bool:
        if self.held >= self.slots:
            return False
        return is_primary(priority) or self.speculative_held < self.slots - self.reserve

    def _take(self, priority: int) -> None:
        self.held += 1
        if not is_primary(priority):
            self.speculative_held += 1

    def _give(self, priority: int) -> None:
        self.held -= 1
        if not is_primary(priority):
            self.speculative_held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._heap:
            best = self._heap[0]
            if best.stale or best.future.done():
                heapq.heappop(self._heap)
                continue
            if not self._can_take(best.priority):
                return
            heapq.heappop(self._heap)
            self._live.pop(id(best.future), None)
            self._take(best.priority)
            self._granted[id(best.future)] = best.priority
            best.future.set_result(None)

    async def acquire(self, priority: int, tag: str | None = None) -> int:
        """Wait for a slot; returns the priority the slot is held at (pass it to `release`)."""
        if not self._live and self._can_take(priority):
            self._take(priority)
            return priority
        waiter = _Waiter(
            (-priority, next(self._seq)),
            asyncio.get_running_loop().create_future(),
            tag,
            priority,
        )
        future = waiter.future
        heapq.heappush(self._heap, waiter)
        self._live[id(future)] = waiter
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            current = self._live.pop(id(future), waiter)
            current.stale = True
            if future.done() and not future.cancelled():
                # handed over just as we were cancelled
                self._give(self._granted.pop(id(future), current.priority))
            raise
        return self._granted.pop(id(future), waiter.priority)

    def release(self, priority: int) -> None:
        """Free a slot taken at `priority`, handing it to the best waiter."""
        self._give(priority)

    @asynccontextmanager
    async def slot(self, priority: int, tag: str | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body of the `async with`."""
        held = await self.acquire(priority, tag)
        try:
            yield
        finally:
            self.release(held)

    def promote(self, tag: str, priority: int) -> int:
        """Raise every waiter tagged `tag` to at least `priority`; returns how many moved."""
        moved = 0
        for waiter in list(self._live.values()):
            if waiter.tag != tag or waiter.priority >= priority:
                continue
            waiter.stale = True
            fresh = _Waiter((-priority, waiter.sort_key[1]), waiter.future, tag, priority)
            self._live[id(waiter.future)] = fresh
            heapq.heappush(self._heap, fresh)
            moved += 1
        if moved:
            self._wake()
        return moved
