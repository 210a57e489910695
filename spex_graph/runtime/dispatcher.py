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
import contextlib
import dataclasses
import logging
import math
import numbers
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from spex_graph.algorithms.base import ExpandOrder, SearchState
from spex_graph.backends._common import mark_retrieved, one_line
from spex_graph.backends.base import Backend, Completion, GenerationRequest, Promotable
from spex_graph.backends.gate import PRIMARY_PRIORITY
from spex_graph.backends.retry import RetryPolicy
from spex_graph.backends.retry import call_with_retry as retry_call
from spex_graph.errors import (
    BackendRequestError,
    RequestCancelledError,
    RewardModelError,
    SpexError,
)
from spex_graph.policies.budget import BudgetController, Claim
from spex_graph.rewards.base import RewardModel, ScoreRequest
from spex_graph.runtime.trace import RequestRecord, TokenStats, token_stats
from spex_graph.tree import SearchTree

ExpansionKey = tuple[int, ...]
"""Child indices from the root to the node a request produces."""

Clock = Callable[[], float]
T = TypeVar("T")

log = logging.getLogger(__name__)


class QuerySpeculator(Protocol):
    """The speculation a query's session carries (`spex_graph.policies.speculation`)."""

    def commit(self, tree: SearchTree, search: SearchState) -> None:
        """The real search's state after a selection: speculate from here."""
        ...

    def reconcile(self, tree: SearchTree, orders: Sequence[ExpandOrder]) -> None:
        """The real selection is made: drop speculation it does not want."""
        ...

    def stop(self) -> None:
        """No more speculation for this query (it ended)."""
        ...


def key_str(key: ExpansionKey) -> str:
    """Readable form of a key for traces ("0/2/1"; "" is the root)."""
    return "/".join(map(str, key))


@dataclass
class _Accounting:
    """How a policy request counts against the budget; a primary joining a speculative
    request turns it primary (its claim released, its tokens counted as primary)."""

    primary: bool
    estimate: float
    claim: Claim | None = None


@dataclass
class _Flight:
    task: asyncio.Task[Completion]
    record: RequestRecord
    accounting: _Accounting
    priority: int = 0


@dataclass
class QuerySession:
    """One query's requests in flight and its trace.

    Created by `Dispatcher.session`; closed by `Dispatcher.close`, which
    cancels on the engine whatever is still running.
    """

    query_id: str
    dispatcher: Dispatcher
    records: list[RequestRecord] = field(default_factory=list)
    listeners: list[Callable[[str, ExpansionKey], None]] = field(default_factory=list)
    """Called with ("expanded" | "scored", key) when a request of this query finishes."""
    speculator: QuerySpeculator | None = None
    """The query's SPEX speculator, when speculation is on (see spex_graph.policies)."""
    early_stop: Any = None
    """The query's answer classes kept between early-termination checks."""
    _expansions: dict[ExpansionKey, _Flight] = field(default_factory=dict)
    _scores: dict[ExpansionKey, asyncio.Task[float]] = field(default_factory=dict)
    _score_records: dict[ExpansionKey, RequestRecord] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    _running_at_depth: dict[int, int] = field(default_factory=dict)

    def expand(
        self,
        key: ExpansionKey,
        build: Callable[[str], GenerationRequest],
        *,
        speculative: bool = False,
        claim: Claim | None = None,
    ) -> asyncio.Task[Completion]:
        """Submit (or join) the generation of the node at `key`.

        `build(request_id)` makes the request; it is only called when nothing
        for this key is in flight or done. A primary submission that joins a
        speculative one marks it used (a speculation hit). A speculative
        submission carries its budget `claim`, released when the request ends.
        """
        flight = self._expansions.get(key)
        if flight is not None and not (flight.task.cancelled() or _failed(flight.task)):
            if not speculative and flight.record.speculative:
                flight.record.outcome = "used"
                self._make_primary(flight)
            if claim is not None:
                self.dispatcher.release(claim)
            return flight.task
        request = build(f"{self.query_id}-{uuid.uuid4().hex[:12]}")
        if not speculative:
            request = dataclasses.replace(request, priority=request.priority + PRIMARY_PRIORITY)
        dispatcher = self.dispatcher
        accounting = _Accounting(
            primary=not speculative,
            estimate=dispatcher.budget.tokens_per_request if dispatcher.budget else 0.0,
            claim=claim,
        )
        if accounting.primary:
            dispatcher.primary_started(accounting.estimate)
        record = RequestRecord(
            request_id=request.request_id,
            query_id=self.query_id,
            kind="policy",
            key=key_str(key),
            speculative=speculative,
            enqueued_at=self.dispatcher.clock(),
        )
        self.records.append(record)
        task = asyncio.ensure_future(self._generate(request, record, accounting))
        task.add_done_callback(mark_retrieved)
        self._expansions[key] = _Flight(task, record, accounting, request.priority)
        depth = len(key)
        self._running_at_depth[depth] = self._running_at_depth.get(depth, 0) + 1

        def done(t: asyncio.Future[Any]) -> None:
            self._running_at_depth[depth] -= 1
            self._notify("expanded", key, t)

        task.add_done_callback(done)
        return task

    def _make_primary(self, flight: _Flight) -> None:
        """A primary request joined speculative work: account it as primary from now on,
        and raise its priority where it still waits (client gate or engine queue)."""
        accounting = flight.accounting
        if accounting.primary or flight.task.done():
            return
        accounting.primary = True
        if accounting.claim is not None:
            self.dispatcher.release(accounting.claim)
            accounting.claim = None
        self.dispatcher.primary_started(accounting.estimate)
        policy = self.dispatcher.policy
        if policy.capabilities.can_promote and isinstance(policy, Promotable):
            raised = flight.priority + PRIMARY_PRIORITY
            self._spawn(policy.promote(flight.record.request_id, raised))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(mark_retrieved)

    def running_at_depth(self, depth: int) -> int:
        """Expansions of nodes at `depth` still running."""
        return self._running_at_depth.get(depth, 0)

    def _notify(self, event: str, key: ExpansionKey, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        for listener in list(self.listeners):
            listener(event, key)

    async def _generate(
        self, request: GenerationRequest, record: RequestRecord, accounting: _Accounting
    ) -> Completion:
        dispatcher = self.dispatcher
        record.started_at = dispatcher.clock()
        try:
            completions = await dispatcher.call_with_retry(
                lambda n: dispatcher.policy.generate(_attempt(request, record, n)),
                dispatcher.policy.name,
            )
        except (asyncio.CancelledError, RequestCancelledError):
            record.outcome = "cancelled"
            record.finished_at = dispatcher.clock()
            raise
        except Exception:
            record.outcome = "failed"
            record.finished_at = dispatcher.clock()
            raise
        finally:
            if accounting.claim is not None:
                dispatcher.release(accounting.claim)
                accounting.claim = None
            if accounting.primary:
                dispatcher.primary_finished(accounting.estimate)
        record.finished_at = dispatcher.clock()
        tokens = sum(c.completion_tokens for c in completions)
        dispatcher.observe_tokens(tokens)
        if not record.speculative and tokens > 0:
            dispatcher.observe_latency((record.finished_at - (record.started_at or 0.0)) / tokens)
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

    def speculative_pending(self, key: ExpansionKey) -> bool:
        """Whether the expansion at `key` is speculative work the real search has not used."""
        flight = self._expansions.get(key)
        return flight is not None and flight.record.outcome in ("pending", "wasted")

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

    async def cancel(self, key: ExpansionKey, *, speculative_only: bool = False) -> None:
        """Abort the expansion (and scoring) at `key` on the engine if still running.

        Finished results are kept: they cost nothing more, a later request for the same
        path joins them, and non-exact mode lets finished speculative leaves vote.
        With `speculative_only`, work the real search has joined in the meantime is
        left alone (a cancellation decided on speculation must never hit a primary).
        """
        score = self._scores.get(key)
        score_record = self._score_records.get(key)
        if speculative_only and score_record is not None and score_record.outcome == "used":
            score = None
        if score is not None and not score.done():
            self._scores.pop(key, None)
            self._score_records.pop(key, None)
            if score_record is not None:
                score_record.outcome = "cancelled"
                await _abort(self.dispatcher.reward, score_record.request_id)
            score.cancel()
            await asyncio.gather(score, return_exceptions=True)
        flight = self._expansions.get(key)
        if flight is None or flight.task.done():
            return
        if speculative_only and flight.accounting.primary:
            return
        self._expansions.pop(key, None)
        flight.record.outcome = "cancelled"
        await _abort(self.dispatcher.policy, flight.record.request_id)
        flight.task.cancel()
        await asyncio.gather(flight.task, return_exceptions=True)
        if flight.accounting.claim is not None:
            self.dispatcher.release(flight.accounting.claim)
            flight.accounting.claim = None

    def cancel_soon(self, keys: list[ExpansionKey]) -> None:
        """Schedule `cancel` of speculative work at each key without waiting (for sync
        callers); whatever the real search joins before it runs is kept."""
        for key in keys:
            if key in self._expansions or key in self._scores:
                task = asyncio.ensure_future(self.cancel(key, speculative_only=True))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def has_score(self, key: ExpansionKey) -> bool:
        """Whether scoring for `key` was submitted (and has not failed)."""
        task = self._scores.get(key)
        return task is not None and not (task.cancelled() or _failed(task))

    def reward(self, key: ExpansionKey) -> float | None:
        """The finished reward for `key`, if any."""
        task = self._scores.get(key)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def score(
        self, key: ExpansionKey, request: ScoreRequest, *, speculative: bool = False
    ) -> asyncio.Task[float]:
        """Submit (or join) the scoring of the node at `key`."""
        task = self._scores.get(key)
        if task is not None and not (task.cancelled() or _failed(task)):
            record = self._score_records.get(key)
            if not speculative and record is not None and record.speculative:
                if record.outcome != "used" and not task.done():
                    reward = self.dispatcher.reward
                    if reward.capabilities.can_promote and isinstance(reward, Promotable):
                        self._spawn(reward.promote(record.request_id, PRIMARY_PRIORITY))
                record.outcome = "used"
            return task
        if not speculative:
            request = dataclasses.replace(request, priority=request.priority + PRIMARY_PRIORITY)
        record = RequestRecord(
            request_id=request.request_id,
            query_id=self.query_id,
            kind="reward",
            key=key_str(key),
            speculative=speculative,
            enqueued_at=self.dispatcher.clock(),
        )
        self.records.append(record)
        task = asyncio.ensure_future(self._score(request, record))
        task.add_done_callback(mark_retrieved)
        self._scores[key] = task
        self._score_records[key] = record
        task.add_done_callback(lambda t: self._notify("scored", key, t))
        return task

    async def _score(self, request: ScoreRequest, record: RequestRecord) -> float:
        dispatcher = self.dispatcher
        record.started_at = dispatcher.clock()
        budget = dispatcher.budget
        if budget is not None and not record.speculative:
            budget.reward_started(record.started_at)
        try:
            value = checked_reward(
                await dispatcher.call_with_retry(
                    lambda n: dispatcher.reward.score(_attempt(request, record, n)),
                    dispatcher.reward.name,
                ),
                dispatcher.reward.name,
            )
        except (SpexError, asyncio.CancelledError):
            record.outcome = "failed"
            record.finished_at = dispatcher.clock()
            raise
        except Exception as exc:  # a custom reward model's own bug: one line, not a traceback
            record.outcome = "failed"
            record.finished_at = dispatcher.clock()
            raise RewardModelError(
                f"reward model {dispatcher.reward.name!r} raised {type(exc).__name__}: "
                f"{one_line(exc, 160)}; fix the reward model (it must return a number)"
            ) from exc
        finally:
            if budget is not None and not record.speculative:
                budget.reward_finished(dispatcher.clock())
        record.finished_at = dispatcher.clock()
        if record.outcome == "pending":
            record.outcome = "wasted" if record.speculative else "used"
        return value

    def stats(self) -> TokenStats:
        """Token totals and speculation hit rate so far."""
        return token_stats(self.records)

    async def cancel_all(self) -> None:
        """Stop speculating and abort everything this query still has in flight."""
        self.listeners.clear()
        if self.speculator is not None:
            self.speculator.stop()
        for background in list(self._background):
            background.cancel()
        for key in list(self._expansions):
            flight = self._expansions[key]
            if not flight.task.done():
                await self.cancel(key)
        for key, task in list(self._scores.items()):
            if not task.done():
                await self.cancel(key)
        await asyncio.gather(*self._scores.values(), return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        for flight in self._expansions.values():
            if flight.accounting.claim is not None:
                self.dispatcher.release(flight.accounting.claim)
                flight.accounting.claim = None


def _clear_finished_frames(exc: BaseException) -> None:
    """Drop the locals of `asyncio.wait_for`'s finished frames in `exc`'s tracebacks
    (and those of its cause and context).

    A failed or aborted call leaves a cycle: `wait_for`'s frame holds the inner task,
    whose exception's traceback holds that frame. Until a full collection it keeps the
    query's session and everything it refers to alive (an aborted speculative score
    at the end of a query did). Only `wait_for`'s own frames are cleared: they have
    returned by now, while clearing any other frame could close a coroutine that
    still runs (Python 3.11 and 3.12 finalize a suspended frame that is cleared).
    """
    wait_for = asyncio.wait_for.__code__
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code is wait_for:
                with contextlib.suppress(RuntimeError):  # still running: leave it
                    tb.tb_frame.clear()
            tb = tb.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


async def _abort(target: Backend | RewardModel, request_id: str) -> None:
    """Ask the engine to abort a request; a failed abort must not fail the query's cleanup."""
    try:
        await target.cancel(request_id)
    except Exception as exc:  # the engine may be down; the local task is cancelled anyway
        log.debug("abort of %s on %s failed: %s", request_id, target.name, exc)


R = TypeVar("R", GenerationRequest, ScoreRequest)


def _attempt(request: R, record: RequestRecord, attempt: int) -> R:
    """The request for try `attempt`: a retry gets its own id (the engine may still hold
    the failed one), and the record follows it so an abort reaches the live try."""
    if attempt > 0:
        request = dataclasses.replace(request, request_id=f"{request.request_id}.r{attempt}")
        record.request_id = request.request_id
    return request


def checked_reward(value: object, name: str) -> float:
    """A reward model's answer as a float; NaN, inf, None or a string is an error."""
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f):
            return f
    raise RewardModelError(
        f"reward model {name!r} returned {one_line(repr(value), 60)}; "
        "it must return a finite number (rewards are in [0, 1])"
    )


def _failed(task: asyncio.Task[object]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


@dataclass
class Dispatcher:
    """Sends requests of many concurrent queries to one policy and one reward backend.

    Attributes:
        policy: the generation backend.
        reward: the reward model.
        clock: time source (monotonic seconds; the simulator injects virtual time).
        request_timeout_s: a request that takes longer, retries and their waits
            included, fails with a one-line error.
        retries: extra attempts of a request after a retryable failure (see
            spex_graph.backends.retry); speculative ones too, since a primary
            request may have joined them.
        retry: backoff and Retry-After handling between attempts.
    """

    policy: Backend
    reward: RewardModel
    clock: Clock = time.monotonic
    request_timeout_s: float = 600.0
    retries: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetController | None = None
    on_close: list[Callable[[QuerySession], None]] = field(default_factory=list)
    """Called with each query's session when it closes (benchmarks collect traces here)."""
    _sessions: dict[str, QuerySession] = field(default_factory=dict)

    def primary_started(self, tokens: float) -> None:
        """Count a primary request against the shared budget (never refused)."""
        if self.budget is not None:
            self.budget.primary_started(tokens)

    def primary_finished(self, tokens: float) -> None:
        """A primary request ended."""
        if self.budget is not None:
            self.budget.primary_finished(tokens)

    def observe_tokens(self, tokens: int) -> None:
        """Feed the budget's tokens-per-request mean."""
        if self.budget is not None:
            self.budget.observe_tokens(tokens)

    def observe_latency(self, seconds_per_token: float) -> None:
        """Feed a primary request's per-token latency to the budget (load awareness)."""
        if self.budget is not None:
            self.budget.observe_latency(seconds_per_token)

    def release(self, claim: Claim) -> None:
        """Return a speculative claim to the budget."""
        if self.budget is not None:
            self.budget.release(claim)

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

    @property
    def open_sessions(self) -> int:
        """Queries with an open session (zero once every query has ended)."""
        return len(self._sessions)

    async def close(self, query_id: str) -> QuerySession | None:
        """Cancel the query's remaining work and drop its session; returns it for its trace.

        Idempotent and safe to call from a `finally` (also when cancelled): the
        session and the budget registration are dropped even if an abort fails.
        """
        session = self._sessions.pop(query_id, None)
        try:
            if session is not None:
                await asyncio.shield(session.cancel_all())
        finally:
            if self.budget is not None:
                self.budget.unregister(query_id)
        if session is not None:
            try:
                for hook in self.on_close:
                    hook(session)
            finally:
                # the speculator and its session refer to each other: left so, a finished
                # query's flights, completions and nodes wait for a full collection
                session.speculator = None
        return session

    async def call_with_retry(self, call: Callable[[int], Awaitable[T]], target: str) -> T:
        """Run `call(attempt)` under the request timeout, retrying retryable failures.

        The timeout bounds the whole call, attempts and waits together (on the event
        loop's clock, so virtual time in the simulator).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout_s
        policy = dataclasses.replace(self.retry, attempts=max(1, self.retries + 1))

        async def attempt(n: int) -> T:
            inner = asyncio.ensure_future(call(n))
            inner.add_done_callback(mark_retrieved)
            try:
                return await asyncio.wait_for(inner, max(0.0, deadline - loop.time()))
            except BaseException as exc:
                _clear_finished_frames(exc)
                del inner  # this frame ends up in the same traceback
                raise

        try:
            return await retry_call(attempt, policy, deadline=deadline, clock=loop.time)
        except TimeoutError:
            raise SpexError(
                f"a request to {target!r} took longer than "
                f"{self.request_timeout_s:.0f}s; raise --request-timeout or check the engine"
            ) from None
