"""An asyncio event loop on virtual time.

`VirtualEventLoop.time()` returns virtual seconds. When no callback is ready,
the loop does not sleep: it jumps virtual time straight to the next timer
(`asyncio.sleep`, `call_later`, `wait_for` timeouts). A simulated engine that
"computes" for 6 ms therefore costs no real time, and every run of the same
program gives the same virtual timings, independent of the machine's speed.

How: the loop's selector is wrapped. asyncio asks the selector to wait for I/O
for `timeout` seconds (the time to the next timer); the wrapper polls the real
selector without waiting and, if nothing is ready, advances virtual time by
`timeout` instead. With `timeout=None` (no timer at all) it blocks on the real
selector, so wake-ups from other threads (`call_soon_threadsafe`) still work.

Threads: LangGraph runs sync pieces of a graph (conditional edges) through
`run_in_executor`. If they ran on real threads while virtual time jumped
ahead, their results would land at machine-dependent virtual times. By default
the loop therefore runs executor jobs inline (synchronously, zero virtual
time), which makes runs bit-for-bit repeatable; with `inline_executor=False`
they run on threads and virtual time stands still until every one is done.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualClock", "VirtualEventLoop", "new_virtual_loop", "run_virtual", "virtual_now"]

T = TypeVar("T")


class _VirtualSelector:
    """Wraps a real selector; `select(timeout)` advances virtual time instead of waiting."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualEventLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Ready I/O events; advances the loop's virtual time when there are none."""
        if timeout is None:
            return self._real.select(None)
        events = self._real.select(0)
        if events or timeout <= 0:
            return events
        if self._loop._threads_busy:
            # a thread is working: wait for it in real time, keep virtual time still
            return self._real.select(None)
        self._loop._advance(timeout)
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """Delegate to the real selector."""
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        """Delegate to the real selector."""
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """Delegate to the real selector."""
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        """Delegate to the real selector."""
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        """Delegate to the real selector."""
        return self._real.get_map()

    def close(self) -> None:
        """Close the real selector."""
        self._real.close()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual and jumps to the next timer.

    Attributes:
        start: virtual time at creation (default 0.0).
    """

    def __init__(self, start: float = 0.0, *, inline_executor: bool = True) -> None:
        """Create the loop with virtual time `start`.

        `inline_executor`: run `run_in_executor` jobs synchronously (deterministic).
        """
        self._virtual_now = float(start)
        self._inline_executor = inline_executor
        self._threads_busy = 0
        real = selectors.DefaultSelector()
        super().__init__(selector=_VirtualSelector(real, self))  # type: ignore[arg-type]

    def time(self) -> float:
        """Virtual seconds (monotonic, starts at `start`)."""
        return self._virtual_now

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        """Run `func(*args)` inline (default) or on a thread while virtual time waits."""
        if self._inline_executor:
            future: asyncio.Future[Any] = self.create_future()
            try:
                future.set_result(func(*args))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                future.set_exception(exc)
            return future
        self._threads_busy += 1
        threaded = super().run_in_executor(executor, func, *args)

        def done(_: asyncio.Future[Any]) -> None:
            self._threads_busy -= 1

        threaded.add_done_callback(done)
        return threaded

    def _advance(self, timeout: float) -> None:
        """Jump virtual time forward by `timeout`, landing exactly on the next timer."""
        target = self._virtual_now + timeout
        scheduled = getattr(self, "_scheduled", None)
        if scheduled:
            when = float(scheduled[0].when())
            # asyncio computed timeout = when - now; land on `when` exactly (no float drift).
            if abs(when - target) <= 1e-9 * max(1.0, abs(when)):
                target = when
        self._virtual_now = max(self._virtual_now, target)


def new_virtual_loop(start: float = 0.0, *, inline_executor: bool = True) -> VirtualEventLoop:
    """A fresh virtual-time event loop (not set as the current loop)."""
    return VirtualEventLoop(start, inline_executor=inline_executor)


def run_virtual(
    coro: Coroutine[Any, Any, T], *, start: float = 0.0, inline_executor: bool = True
) -> T:
    """Run `coro` to completion on a fresh virtual loop and return its result.

    Like `asyncio.run`: remaining tasks are cancelled and async generators shut
    down before the loop closes. Must not be called from a running loop.
    """
    factory = lambda: new_virtual_loop(start, inline_executor=inline_executor)  # noqa: E731
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def virtual_now() -> float:
    """`loop.time()` of the running loop (virtual seconds on a virtual loop)."""
    return asyncio.get_running_loop().time()


class VirtualClock:
    """A clock callable for the dispatcher: the running loop's `time()`.

    Pass an instance (or `virtual_now`) as `SearchContext.create(..., clock=...)`.
    Bound to a loop when given one, else reads whichever loop is running.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Read `loop.time()`, or the running loop's time when `loop` is None."""
        self._loop = loop

    def now(self) -> float:
        """Current (virtual) time in seconds."""
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        return loop.time()

    def __call__(self) -> float:
        """Same as `now()`."""
        return self.now()
