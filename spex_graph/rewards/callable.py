"""A reward from any Python callable, sync or async."""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
from collections.abc import Awaitable, Callable
from typing import Any

from spex_graph.backends._common import one_line
from spex_graph.errors import BackendRequestError, RequestCancelledError, SpexError
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest

RewardFn = Callable[[ScoreRequest], float | Awaitable[float]]
"""(request) -> reward in [0, 1]; a coroutine function or a plain function."""


def _is_async(fn: Any) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


class CallableReward:
    """Wrap `async (ScoreRequest) -> float` or a sync callable (run in a worker thread).

    The result must be a finite real number in [0, 1] (bools count as 0/1);
    anything else raises BackendRequestError naming the callable. Exceptions the
    callable raises become BackendRequestError too (SpexErrors pass through).
    `cancel` cancels the asyncio task; a sync callable's thread runs to its end
    but its result is dropped.

    Args:
        fn: the reward function.
        name: reward name in traces (default: the callable's name).
        uses_engine: report that the callable spends engine time (e.g. it calls a model).
    """

    name: str
    capabilities: RewardCapabilities

    def __init__(self, fn: RewardFn, *, name: str | None = None, uses_engine: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"CallableReward needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        self.capabilities = RewardCapabilities(can_abort=False, uses_engine=uses_engine)
        self._async = _is_async(fn)
        self._tasks: dict[str, asyncio.Task[float]] = {}
        self._cancelled: set[str] = set()

    async def score(self, request: ScoreRequest) -> float:
        """Call the function and validate its result."""
        task = asyncio.create_task(self._call(request))
        self._tasks[request.request_id] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if request.request_id in self._cancelled:
                raise RequestCancelledError(
                    f"reward {self.name} for request {request.request_id} was cancelled"
                ) from None
            task.cancel()
            raise
        finally:
            if self._tasks.get(request.request_id) is task:
                del self._tasks[request.request_id]
            self._cancelled.discard(request.request_id)

    async def _call(self, request: ScoreRequest) -> float:
        try:
            if self._async:
                value = await self.fn(request)  # type: ignore[misc]
            else:
                value = await asyncio.to_thread(self.fn, request)
                if inspect.isawaitable(value):
                    value = await value
        except (SpexError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise BackendRequestError(
                f"reward callable {self.name} raised {type(exc).__name__}: "
                f"{one_line(exc, 160)} (request {request.request_id})"
            ) from exc
        return self._validate(value, request)

    def _validate(self, value: Any, request: ScoreRequest) -> float:
        if isinstance(value, numbers.Real):
            f = float(value)
            if math.isfinite(f) and 0.0 <= f <= 1.0:
                return f
        raise BackendRequestError(
            f"reward callable {self.name} returned {one_line(repr(value), 60)} for request "
            f"{request.request_id}; it must return a finite number in [0, 1]"
        )

    async def cancel(self, request_id: str) -> None:
        """Cancel the call for `request_id`; unknown ids are ignored."""
        task = self._tasks.get(request_id)
        if task is not None and not task.done():
            self._cancelled.add(request_id)
            task.cancel()

    async def aclose(self) -> None:
        """Cancel calls in flight."""
        for task in list(self._tasks.values()):
            task.cancel()
