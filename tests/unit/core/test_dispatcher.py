"""The dispatcher: joining, cancellation, trace outcomes, timeouts, retries."""

from __future__ import annotations

import asyncio

import pytest
from helpers import AnswerReward

from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.errors import BackendRequestError, SpexError
from spex_graph.runtime.dispatcher import Dispatcher


def builder(text: str = "p"):  # type: ignore[no-untyped-def]
    return lambda rid: GenerationRequest(prompt=text, seeds=(1,), request_id=rid, stop=("\n\n",))


def slow_backend(delay: float = 0.05) -> ScriptedBackend:
    return ScriptedBackend(script=lambda r, s: f"text {s}", latency=lambda r: delay)


async def test_primary_joins_speculative_work_and_counts_a_hit() -> None:
    backend = slow_backend()
    session = Dispatcher(backend, AnswerReward()).session("q")
    spec = session.expand((0,), builder(), speculative=True)
    primary = session.expand((0,), builder())
    assert spec is primary
    assert (await primary).text == "text 1"
    assert len(backend.calls) == 1
    stats = session.stats()
    assert stats.speculative_requests == 1 and stats.speculative_hits == 1
    assert stats.speculative_used > 0 and stats.primary == 0


async def test_unused_speculation_is_wasted_and_cancel_aborts_on_the_engine() -> None:
    backend = slow_backend(0.5)
    dispatcher = Dispatcher(backend, AnswerReward())
    session = dispatcher.session("q")
    session.expand((0,), builder(), speculative=True)
    session.expand((1,), builder("other"), speculative=True)
    await asyncio.sleep(0.01)
    await session.cancel((1,))
    assert backend.cancelled and backend.cancelled[0].startswith("q-")
    closed = await dispatcher.close("q")
    assert closed is not None
    outcomes = sorted(r.outcome for r in closed.records)
    assert outcomes == ["cancelled", "cancelled"]
    assert closed.stats().hit_rate == 0.0
    assert not dispatcher.has_session("q")


async def test_a_scheduled_speculative_cancel_spares_work_the_search_joined_meanwhile() -> None:
    backend = slow_backend(0.05)
    session = Dispatcher(backend, AnswerReward()).session("q")
    session.expand((0,), builder(), speculative=True)
    session.cancel_soon([(0,)])  # decided on speculation (a revoked claim, a dropped key)
    primary = session.expand((0,), builder())  # the real search joins before it runs
    assert (await primary).text == "text 1"
    assert backend.cancelled == []


async def test_finished_unused_speculation_counts_as_wasted_tokens() -> None:
    session = Dispatcher(slow_backend(0.0), AnswerReward()).session("q")
    await session.expand((3,), builder(), speculative=True)
    stats = session.stats()
    assert stats.speculative_wasted > 0 and stats.speculative_used == 0


async def test_timeout_is_a_one_line_error_naming_the_fix() -> None:
    dispatcher = Dispatcher(slow_backend(5.0), AnswerReward(), request_timeout_s=0.05)
    with pytest.raises(SpexError, match="request-timeout"):
        await dispatcher.session("q").expand((0,), builder())


async def test_transient_errors_are_retried_then_surface() -> None:
    attempts = []

    class Flaky(ScriptedBackend):
        async def generate(self, request):  # type: ignore[no-untyped-def]
            attempts.append(request)
            if len(attempts) < 2:
                raise BackendRequestError("temporary failure")
            return await super().generate(request)

    session = Dispatcher(Flaky(), AnswerReward(), retries=1).session("q")
    assert (await session.expand((0,), builder())).text
    attempts.clear()

    class Broken(ScriptedBackend):
        async def generate(self, request):  # type: ignore[no-untyped-def]
            raise BackendRequestError("always broken")

    session = Dispatcher(Broken(), AnswerReward(), retries=2).session("q")
    with pytest.raises(BackendRequestError):
        await session.expand((0,), builder())
    assert session.records[0].outcome == "failed"
    # a failed key can be resubmitted
    assert session.in_flight((0,)) is False


async def test_sessions_are_per_query() -> None:
    dispatcher = Dispatcher(slow_backend(0.0), AnswerReward())
    a, b = dispatcher.session("a"), dispatcher.session("b")
    await a.expand((0,), builder())
    assert b.completion((0,)) is None and a.completion((0,)) is not None
    assert dispatcher.session("a") is a
