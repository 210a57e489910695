"""A private event loop on a daemon thread.

Backends hold connections and the dispatcher holds tasks bound to one event
loop. Running every query of a reasoner on its own loop lets sync callers
(`invoke`, `batch`) and async callers on any loop share them safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on a dedicated event loop in a daemon thread."""

    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self._factory = loop_factory or asyncio.new_event_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = self._factory()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="spex-loop", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule a coroutine on the loop; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and block until it finishes. When the wait is
        interrupted (Ctrl-C, SIGTERM), the coroutine is cancelled too: work nobody
        waits for any more stops, and its `finally` blocks release what it holds."""
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a coroutine that runs on the loop, from any other loop."""
        if _running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_SHARED: LoopThread | None = None
_SHARED_LOCK = threading.Lock()


def shared_loop() -> LoopThread:
    """The process-wide loop every SpexReasoner runs on (so backends can be shared)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LoopThread()
        return _SHARED


def run_on_shared_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the shared loop from sync code (e.g. `backend.health()`)."""
    return shared_loop().run(coro)
