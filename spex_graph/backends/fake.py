"""A scripted in-process backend for unit and graph tests.

Text is a pure function of (request, seed), so the same node always gets the
same text, as on a seeded real engine. Latency is injectable (seconds of
`asyncio.sleep`, real or virtual time), and cancellation interrupts the
sleep, so speculation and abort logic can be tested without a model.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.errors import RequestCancelledError

Script = Callable[[GenerationRequest, int], str]
"""(request, seed) -> the continuation's text (ending is decided by the stop strings)."""


def toy_math_script(depth_to_answer: int = 3, answers: tuple[str, ...] = ("42", "41")) -> Script:
    """A script that writes `depth_to_answer` steps, then a boxed answer.

    The answer is `answers[0]` for most seeds and the others for the rest, so
    votes have a clear majority; step texts depend on the seed.
    """

    def script(request: GenerationRequest, seed: int) -> str:
        rng = random.Random(seed)
        depth = request.assistant_prefix.count("\n\n")
        lines: list[str] = []
        for d in range(depth, depth_to_answer + 1):
            if d < depth_to_answer:
                lines.append(f"Step {d + 1}: combine {rng.randint(1, 9)} and {rng.randint(1, 9)}.")
            else:
                answer = answers[0] if rng.random() < 0.7 else rng.choice(answers[1:] or answers)
                lines.append(f"So the answer is \\boxed{{{answer}}}.")
        return "\n\n".join(lines)

    return script


class PrioritySlots:
    """A fixed number of engine slots; waiters with a higher priority go first
    (FIFO within a priority), like SGLang's priority scheduling."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def acquire(self, priority: int) -> None:
        """Wait for a slot."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (-priority, self._seq, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            raise

    def release(self) -> None:
        """Free a slot, handing it to the best live waiter."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


@dataclass
class ScriptedBackend:
    """Backend whose text comes from a script and whose latency is injected.

    Attributes:
        script: (request, seed) -> full continuation text before stop strings apply.
        latency: seconds a request takes, as a function of the request (default 0).
        max_concurrency: reported capability; also bounds concurrent requests when
            `enforce_concurrency` is set (models a fixed number of engine slots).
        calls: every request received (for assertions).
        cancelled: request ids cancelled while in flight.
    """

    script: Script = field(default_factory=toy_math_script)
    latency: Callable[[GenerationRequest], float] = lambda _req: 0.0
    max_concurrency: int = 64
    enforce_concurrency: bool = False
    name: str = "fake"
    calls: list[GenerationRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    _tasks: dict[str, asyncio.Task[list[Completion]]] = field(default_factory=dict)
    _slots: PrioritySlots | None = None

    @property
    def capabilities(self) -> BackendCapabilities:
        """Fake engines abort, seed and share prefixes perfectly."""
        return BackendCapabilities(
            can_abort=True,
            seeded=True,
            logprobs=True,
            shares_prefix_cache=True,
            max_concurrency=self.max_concurrency,
            batch_cost=0.0,  # concurrent requests wait side by side, as on a GPU
        )

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Run the script for each seed after the injected latency."""
        self.calls.append(request)
        task = asyncio.ensure_future(self._run(request))
        self._tasks[request.request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and request.request_id in self.cancelled:
                raise RequestCancelledError(f"request {request.request_id} was cancelled") from None
            raise
        finally:
            self._tasks.pop(request.request_id, None)

    async def _run(self, request: GenerationRequest) -> list[Completion]:
        if not self.enforce_concurrency:
            return await self._complete(request)
        if self._slots is None:
            self._slots = PrioritySlots(self.max_concurrency)
        await self._slots.acquire(request.priority)
        try:
            return await self._complete(request)
        finally:
            self._slots.release()

    async def _complete(self, request: GenerationRequest) -> list[Completion]:
        delay = self.latency(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return [self._one(request, seed) for seed in request.seeds]

    def _one(self, request: GenerationRequest, seed: int) -> Completion:
        text = self.script(request, seed)
        finish, matched = "stop", None
        cut = min(
            ((text.find(s), s) for s in request.stop if s and s in text),
            default=None,
        )
        if cut is not None:
            text, matched = text[: cut[0]], cut[1]
        words = text.split()
        if len(words) > request.max_tokens:
            text, finish, matched = " ".join(words[: request.max_tokens]), "length", None
        n_tokens = max(1, len(text.split()))
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=max(1, len(request.prompt.split())),
            completion_tokens=n_tokens,
            cached_tokens=0,
            stop_matched=matched,
            token_logprobs=tuple(-0.1 for _ in range(n_tokens)) if request.logprobs else (),
        )

    async def cancel(self, request_id: str) -> None:
        """Cancel the request's task if it is still running."""
        task = self._tasks.get(request_id)
        if task is not None and not task.done():
            self.cancelled.append(request_id)
            task.cancel()

    async def health(self) -> None:
        """Always healthy."""

    async def aclose(self) -> None:
        """Cancel whatever is still running."""
        for request_id in list(self._tasks):
            await self.cancel(request_id)
