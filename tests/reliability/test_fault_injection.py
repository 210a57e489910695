"""Faults injected by real local HTTP servers (issue #11, item 3).

SGLang- and OpenAI-protocol servers on 127.0.0.1 write toy math and fail 10%
of generation requests in one way per test. Retryable faults (500, 429 with
Retry-After, 503, connection resets, truncated JSON, invalid UTF-8) are
retried with backoff: every query finishes with the answer the fault-free run
gives. A hang fails only its query, with a one-line timeout error, within the
configured timeout. Empty and 100k-character answers are handled. Speculative
requests that are no longer wanted are aborted on the server (counted there),
and nothing is left running. The reward server going down mid-run fails the
remaining queries with a one-line error; none hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from backends.fake_sglang_server import FakeSGLangServer
from fault_servers import FaultPlan, FaultyOpenAIServer, FaultySGLangServer, wait_idle
from helpers import AnswerReward

from spex_graph import SpexReasoner
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SGLangBackend
from spex_graph.errors import SpexError
from spex_graph.rewards.prm import SGLangPRM
from spex_graph.runtime.dispatcher import QuerySession
from spex_graph.runtime.trace import RequestRecord

QUERIES = 8
RATE = 0.1
TIMEOUT_S = 120.0  # generous: the suite may share a loaded machine


def reasoner_for(server: Any, reward: Any = None, timeout: float = TIMEOUT_S) -> SpexReasoner:
    if isinstance(server, FaultySGLangServer):
        backend: Any = SGLangBackend(server.url)
    else:
        backend = OpenAICompatBackend(server.url, "fake-model", chat=False)
    return SpexReasoner(
        backend, reward or AnswerReward(), task="gsm8k", width=4, request_timeout_s=timeout
    )


def run_queries(reasoner: SpexReasoner) -> tuple[list[Any], list[float], list[RequestRecord]]:
    records: list[RequestRecord] = []

    def keep(session: QuerySession) -> None:
        records.extend(session.records)

    reasoner.context.dispatcher.on_close.append(keep)

    async def one(i: int) -> tuple[Any, float]:
        started = time.monotonic()
        try:
            result: Any = await reasoner.ainvoke(f"question {i}: what is 6 x 7?")
        except SpexError as exc:
            result = exc
        return result, time.monotonic() - started

    async def main() -> list[tuple[Any, float]]:
        return await asyncio.gather(*(one(i) for i in range(QUERIES)))

    outs = asyncio.run(main())
    return [o for o, _ in outs], [t for _, t in outs], records


def start(protocol: str, plan: FaultPlan) -> Any:
    cls = FaultySGLangServer if protocol == "sglang" else FaultyOpenAIServer
    return cls(plan).start()


def run_on(
    server: Any, timeout: float = TIMEOUT_S
) -> tuple[list[Any], list[float], list[RequestRecord], SpexReasoner]:
    """Run QUERIES queries through `server`, then close the reasoner and stop the server."""
    reasoner = reasoner_for(server, timeout=timeout)
    try:
        results, elapsed, records = run_queries(reasoner)
    finally:
        reasoner.close()
        server.stop()
    return results, elapsed, records, reasoner


@pytest.fixture(scope="module")
def reference() -> Iterator[dict[str, list[str | None]]]:
    answers = {}
    for protocol in ("sglang", "openai"):
        results, _, _, _ = run_on(start(protocol, FaultPlan()))
        answers[protocol] = [r.answer for r in results]
    yield answers


def assert_aborts_reached_the_server(
    server: FaultySGLangServer, records: list[RequestRecord]
) -> None:
    wait_idle(server)
    assert not server.live, "a request is still running on the engine"
    ran = {rid for _, rid, fault in server.arrivals if fault in (None, "empty", "long")}
    finished = set(server.finished)
    aborted = {call.get("rid") for call in server.abort_calls}
    cancelled = [r.request_id for r in records if r.kind == "policy" and r.outcome == "cancelled"]
    for request_id in cancelled:
        rid = f"{request_id}-0000"
        if rid in ran and rid not in finished:  # still running on the engine when dropped
            assert rid in aborted, f"cancelled request {rid} was never aborted on the server"
    assert set(server.aborted) <= aborted


RETRYABLE = [
    ("sglang", "500"),
    ("sglang", "429"),
    ("sglang", "503"),
    ("sglang", "reset"),
    ("sglang", "truncated"),
    ("sglang", "utf8"),
    ("openai", "500"),
    ("openai", "429"),
    ("openai", "reset"),
    ("openai", "utf8"),
]


@pytest.mark.parametrize(("protocol", "fault"), RETRYABLE)
def test_retryable_faults_are_retried_and_every_query_finishes(
    protocol: str, fault: str, reference: dict[str, list[str | None]]
) -> None:
    server = start(protocol, FaultPlan(fault, RATE, seed=3))
    results, _, records, reasoner = run_on(server)
    assert server.plan.injected > 0
    errors = [str(r) for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert [r.answer for r in results] == reference[protocol]
    assert reasoner.context.dispatcher.open_sessions == 0
    if protocol == "sglang":
        assert_aborts_reached_the_server(server, records)


def test_retry_after_is_honoured() -> None:
    plan = FaultPlan("429", 0.2, seed=5)
    plan.retry_after = "0.4"
    server = FaultySGLangServer(plan).start()
    results, _, _, _ = run_on(server)
    assert all(not isinstance(r, BaseException) for r in results)
    arrivals = {rid: t for t, rid, _ in server.arrivals}
    limited = [(t, rid) for t, rid, fault in server.arrivals if fault == "429"]
    assert limited
    for t, rid in limited:
        base, child = rid.rsplit("-", 1)
        head, _, attempt = base.rpartition(".r")
        retry = f"{head}.r{int(attempt) + 1}-{child}" if head else f"{base}.r1-{child}"
        if retry in arrivals:  # not every 429'd request is still wanted afterwards
            assert arrivals[retry] - t >= 0.35, (rid, arrivals[retry] - t)


@pytest.mark.parametrize("protocol", ["sglang", "openai"])
def test_a_hang_fails_only_its_query_within_the_timeout(protocol: str) -> None:
    timeout = 3.0
    server = start(protocol, FaultPlan("hang", 0.03, seed=1))
    results, elapsed, _, _ = run_on(server, timeout=timeout)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert server.plan.injected > 0
    for i in failed:
        assert "took longer than 3s; raise --request-timeout" in str(results[i])
        assert "\n" not in str(results[i])
    for i, r in enumerate(results):
        if i not in failed:
            assert r.answer in ("42", "41")
    # a query waits at most one timeout per round it is in; nothing waits forever
    assert max(elapsed) < 60


@pytest.mark.parametrize("protocol", ["sglang", "openai"])
@pytest.mark.parametrize("fault", ["empty", "long"])
def test_odd_answers_are_handled(protocol: str, fault: str) -> None:
    server = start(protocol, FaultPlan(fault, RATE, seed=2))
    results, _, _, _ = run_on(server)
    assert server.plan.injected > 0
    assert all(not isinstance(r, BaseException) for r in results), results
    assert sum(r.answer == "42" for r in results) >= QUERIES // 2


def test_reward_server_down_mid_run_fails_the_rest_with_one_line() -> None:
    policy_server = FaultySGLangServer().start()
    prm_server = FakeSGLangServer().start()
    tok = prm_server.tokenizer
    prm = SGLangPRM(prm_server.url, good_token_id=tok.id_of("+"), bad_token_id=tok.id_of("-"))
    reasoner = reasoner_for(policy_server, reward=prm, timeout=20.0)

    async def main() -> list[Any]:
        out: list[Any] = []
        for i in range(4):
            if i == 2:  # the server goes down: open connections drop, new ones are refused
                prm_server.set_fault("drop", "/generate", "/v1/score", "/tokenize", "/health")
                prm_server.stop()
            started = time.monotonic()
            try:
                out.append(await reasoner.ainvoke(f"question {i}: what is 6 x 7?"))
            except SpexError as exc:
                out.append(exc)
            assert time.monotonic() - started < 20
        return out

    try:
        results = asyncio.run(main())
    finally:
        reasoner.close()
        policy_server.stop()
    assert all(not isinstance(r, BaseException) for r in results[:2])
    for r in results[2:]:
        assert isinstance(r, SpexError)
        assert "cannot connect" in str(r) and "\n" not in str(r)
    assert reasoner.context.dispatcher.open_sessions == 0
    wait_idle(policy_server)
    assert not policy_server.live


def test_a_cancelled_query_aborts_everything_it_has_on_the_server() -> None:
    server = FaultySGLangServer(token_delay=0.05).start()
    reasoner = reasoner_for(server)
    seen_live: list[int] = []

    async def main() -> None:
        async def watch() -> None:
            while True:
                seen_live.append(len(server.live))
                await asyncio.sleep(0.01)

        watcher = asyncio.ensure_future(watch())
        for i in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reasoner.ainvoke(f"question {i}: 6 x 7?"), 0.6)
        watcher.cancel()

    try:
        asyncio.run(main())
        wait_idle(server)
        aborted = {call.get("rid") for call in server.abort_calls}
        assert max(seen_live) > 0, "requests were running when the queries were cancelled"
        assert not server.live
        assert server.aborted and set(server.aborted) <= aborted
        assert reasoner.context.dispatcher.open_sessions == 0
    finally:
        reasoner.close()
        server.stop()
