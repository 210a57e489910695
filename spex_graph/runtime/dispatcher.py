"""The dispatcher: owns every request in flight, across supersteps and queries.

Graph nodes submit work and collect results; the asyncio tasks that carry the
requests live here, not in graph state, so they can outlive a LangGraph
superstep (speculative expansions keep running while the graph waits on the
reward barrier) and never enter a checkpoint.

Requests are keyed per query by the node path they produce (`ExpansionKey`).
Submitting a key that is already in flight returns the same task: that is how
a primary expansion picks up speculative work, and since the seed derives
from the path, the text is the one the primary request would have produced.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from spex_graph.backends.base import Backend, Completion, GenerationRequest
from spex_graph.errors import BackendRequestError, RequestCancelledError, SpexError
from spex_graph.rewards.base import RewardModel, ScoreRequest
from spex_graph.runtime.trace import RequestRecord, TokenStats, token_stats

ExpansionKey = tuple[int, ...]
"""Child indices from the root to the node a request produces."""

Clock = Callable[[], float]
T = TypeVar("T")


def key_str(key: ExpansionKey) -> str:
    """Readable form of a key for traces ("0/2/1"; "" is the root)."""
    return "/".join(map(str, key))


@dataclass
class _Flight:
    task: asyncio.Task[Completion]
    record: RequestRecord


@dataclass
class QuerySession:
    """One query's requests in flight and its trace.

    Created by `Dispatcher.session`; closed by `Dispatcher.close`, which
    cancels on the engine whatever is still running.
    """

    query_id: str
    dispatcher: Dispatcher
    records: list[RequestRecord] = field(default_factory=list)
    _expansions: dict[ExpansionKey, _Flight] = field(default_factory=dict)
    _scores: dict[ExpansionKey, asyncio.Task[float]] = field(default_factory=dict)

    def expand(
        self,
        key: ExpansionKey,
        build: Callable[[str], GenerationRequest],
        *,
        speculative: bool = False,
    ) -> asyncio.Task[Completion]:
        """Submit (or join) the generation of the node at `key`.

        `build(request_id)` makes the request; it is only called when nothing
        for this key is in flight or done. A primary submission that joins a
        speculative one marks it used (a speculation hit).
        """
        flight = self._expansions.get(key)
        if flight is not None and not (flight.task.cancelled() or _failed(flight.task)):
            if not speculative and flight.record.speculative:
                flight.record.outcome = "used"
            return flight.task
        request = build(f"{self.query_id}-{uuid.uuid4().hex[:12]}")
        record = RequestRecord(
            request_id=request.request_id,
            query_id=self.query_id,
            kind="policy",
            key=key_str(key),
            speculative=speculative,
            enqueued_at=self.dispatcher.clock(),
        )
        self.records.append(record)
        task = asyncio.ensure_future(self._generate(request, record))
        self._expansions[key] = _Flight(task, record)
        return task

    async def _generate(self, request: GenerationRequest, record: RequestRecord) -> Completion:
        dispatcher = self.dispatcher
        record.started_at = dispatcher.clock()
        try:
            completions = await dispatcher.call_with_retry(
                lambda: dispatcher.policy.generate(request), dispatcher.policy.name
            )
        except (asyncio.CancelledError, RequestCancelledError):
            record.outcome = "cancelled"
            record.finished_at = dispatcher.clock()
            raise
        except Exception:
            record.outcome = "failed"
            record.finished_at = dispatcher.clock()
            raise
        record.finished_at = dispatcher.clock()
        if len(completions) != 1:
            record.outcome = "failed"
            raise BackendRequestError(
                f"backend {dispatcher.policy.name!r} returned {len(completions)} completions "
                "for a 1-sample request; check the backend's n handling"
            )
        completion = completions[0]
        record.prompt_tokens = completion.prompt_tokens
        record.completion_tokens = completion.completion_tokens
        if record.outcome == "pending":
            record.outcome = "wasted" if record.speculative else "used"
        return completion

    def adopt(self, key: ExpansionKey) -> None:
        """Mark the expansion at `key` as used by the real search."""
        flight = self._expansions.get(key)
        if flight is not None and flight.record.outcome in ("pending", "wasted"):
            flight.record.outcome = "used"

    def was_speculative(self, key: ExpansionKey) -> bool:
        """Whether the expansion at `key` was first submitted speculatively."""
        flight = self._expansions.get(key)
        return flight is not None and flight.record.speculative

    def completion(self, key: ExpansionKey) -> Completion | None:
        """The finished completion for `key`, if any."""
        flight = self._expansions.get(key)
        if flight is None or not flight.task.done() or flight.task.cancelled():
            return None
        if flight.task.exception() is not None:
            return None
        return flight.task.result()

    def in_flight(self, key: ExpansionKey) -> bool:
        """Whether an expansion for `key` is submitted and not failed or cancelled."""
        flight = self._expansions.get(key)
        return flight is not None and not (flight.task.cancelled() or _failed(flight.task))

    def speculative_keys(self) -> list[ExpansionKey]:
        """Keys of speculative expansions not (yet) used by the real search."""
        return [
            k
            for k, f in self._expansions.items()
            if f.record.speculative and f.record.outcome in ("pending", "wasted")
        ]

    async def cancel(self, key: ExpansionKey) -> None:
        """Abort the expansion at `key` on the engine (if running) and forget it."""
        flight = self._expansions.pop(key, None)
        if flight is None:
            return
        if not flight.task.done():
            flight.record.outcome = "cancelled"
            await self.dispatcher.policy.cancel(flight.record.request_id)
            flight.task.cancel()
            await asyncio.gather(flight.task, return_exceptions=True)

    def score(self, key: ExpansionKey, request: ScoreRequest) -> asyncio.Task[float]:
        """Submit (or join) the scoring of the node at `key`."""
        task = self._scores.get(key)
        if task is not None and not (task.cancelled() or _failed(task)):
            return task
        record = RequestRecord(
            request_id=request.request_id,
            query_id=self.query_id,
            kind="reward",
            key=key_str(key),
            speculative=False,
            enqueued_at=self.dispatcher.clock(),
        )
        self.records.append(record)
        task = asyncio.ensure_future(self._score(request, record))
        self._scores[key] = task
        return task

    async def _score(self, request: ScoreRequest, record: RequestRecord) -> float:
        dispatcher = self.dispatcher
        record.started_at = dispatcher.clock()
        try:
            value = await dispatcher.call_with_retry(
                lambda: dispatcher.reward.score(request), dispatcher.reward.name
            )
        except BaseException:
            record.outcome = "failed"
            record.finished_at = dispatcher.clock()
            raise
        record.finished_at = dispatcher.clock()
        record.outcome = "used"
        return value

    def stats(self) -> TokenStats:
        """Token totals and speculation hit rate so far."""
        return token_stats(self.records)

    async def cancel_all(self) -> None:
        """Abort everything this query still has in flight."""
        for key in list(self._expansions):
            flight = self._expansions[key]
            if not flight.task.done():
                await self.cancel(key)
        for task in self._scores.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._scores.values(), return_exceptions=True)


def _failed(task: asyncio.Task[object]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


@dataclass
class Dispatcher:
    """Sends requests of many concurrent queries to one policy and one reward backend.

    Attributes:
        policy: the generation backend.
        reward: the reward model.
        clock: time source (monotonic seconds; the simulator injects virtual time).
        request_timeout_s: a request that takes longer fails with a one-line error.
        retries: extra attempts after a transient BackendRequestError.
    """

    policy: Backend
    reward: RewardModel
    clock: Clock = time.monotonic
    request_timeout_s: float = 600.0
    retries: int = 1
    _sessions: dict[str, QuerySession] = field(default_factory=dict)

    def session(self, query_id: str) -> QuerySession:
        """The query's session, created on first use (a resumed run finds its old one)."""
        session = self._sessions.get(query_id)
        if session is None:
            session = QuerySession(query_id, self)
            self._sessions[query_id] = session
        return session

    def has_session(self, query_id: str) -> bool:
        """Whether the query has an open session."""
        return query_id in self._sessions

    async def close(self, query_id: str) -> QuerySession | None:
        """Cancel the query's remaining work and drop its session; returns it for its trace."""
        session = self._sessions.pop(query_id, None)
        if session is not None:
            await session.cancel_all()
        return session

    async def call_with_retry(self, call: Callable[[], Awaitable[T]], target: str) -> T:
        """Run a backend call under the timeout, retrying transient request errors."""
        attempt = 0
        while True:
            try:
                return await asyncio.wait_for(call(), self.request_timeout_s)
            except TimeoutError:
                raise SpexError(
                    f"a request to {target!r} took longer than "
                    f"{self.request_timeout_s:.0f}s; raise --request-timeout or check the engine"
                ) from None
            except BackendRequestError:
                attempt += 1
                if attempt > self.retries:
                    raise
