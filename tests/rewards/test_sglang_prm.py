"""SGLangPRM against the fake SGLang server: tag layout, normalisation, modes, errors.

The fake PRM puts P(good | label) = 0.8 on a step without "wrong" (0.2 with it)
at each tag, with only half the mass on the two label tokens: an unnormalised
read would give 0.4, not 0.8.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backends.conformance import assert_one_line
from backends.fake_http import TAG, closed_port_url
from backends.fake_sglang_server import FakeSGLangServer

from spex_graph import SpexReasoner
from spex_graph.backends._common import logprob_pair, normalized_pair
from spex_graph.backends.base import LoadReporting
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.backends.gate import PRIMARY_PRIORITY
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
)
from spex_graph.policies import SpexConfig
from spex_graph.rewards.base import RewardModel, ScoreRequest
from spex_graph.rewards.prm import SGLangPRM

GOOD_LAST = ("Step 1: 2 + 3 is wrong here.", "Step 2: 2 + 3 = 5.")
BAD_LAST = ("Step 1: 2 + 3 = 5.", "Step 2: so the answer is wrong.")


def sreq(steps: tuple[str, ...], request_id: str = "s") -> ScoreRequest:
    return ScoreRequest(question="What is 2 + 3?", steps=steps, request_id=request_id)


@pytest.fixture
def servers() -> Iterator[Callable[..., FakeSGLangServer]]:
    started: list[FakeSGLangServer] = []

    def make(**kwargs: Any) -> FakeSGLangServer:
        server: FakeSGLangServer = FakeSGLangServer(**kwargs).start()  # type: ignore[assignment]
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


def prm(srv: FakeSGLangServer, **kwargs: Any) -> SGLangPRM:
    tok = srv.tokenizer
    return SGLangPRM(
        srv.url,
        good_token_id=tok.id_of("+"),
        bad_token_id=tok.id_of("-"),
        **kwargs,
    )


def test_input_format_is_math_shepherd_style() -> None:
    p = SGLangPRM("http://127.0.0.1:1", good_token_id=1, bad_token_id=2)
    assert p.format_input(" Q? ", ["a ", "b"]) == f"Q? a {TAG}\nb {TAG}"
    numbered = SGLangPRM(
        "http://127.0.0.1:1",
        good_token_id=1,
        bad_token_id=2,
        step_template="Step {i}: {step} {tag}",
    )
    assert numbered.format_steps(["x", "y"]) == f"Step 1: x {TAG}\nStep 2: y {TAG}"
    assert isinstance(p, RewardModel)
    with pytest.raises(ConfigError):
        SGLangPRM("http://x", good_token_id=1, bad_token_id=1)
    with pytest.raises(ConfigError):
        SGLangPRM("http://x", good_token_id=1, bad_token_id=2, mode="nope")  # type: ignore[arg-type]


def test_pair_normalisation() -> None:
    assert logprob_pair(math.log(0.4), math.log(0.1)) == pytest.approx(0.8)
    assert logprob_pair(None, math.log(0.1)) == 0.0
    assert logprob_pair(-math.inf, -math.inf) == 0.5
    assert logprob_pair(0.0, -1e9) == 1.0
    assert normalized_pair(0.4, 0.1) == pytest.approx(0.8)
    assert normalized_pair(0.0, 0.0) == 0.5


@pytest.mark.parametrize("mode", ["generate", "score"])
async def test_reads_the_last_tag_normalised(servers: Any, mode: str) -> None:
    srv = servers()
    p = prm(srv, mode=mode)
    assert await p.score(sreq(GOOD_LAST)) == pytest.approx(0.8)
    assert await p.score(sreq(BAD_LAST, "s2")) == pytest.approx(0.2)
    assert await p.score(sreq(GOOD_LAST[-1:], "s3")) == pytest.approx(0.8)
    await p.aclose()
    if mode == "generate":
        body = srv.generate_bodies[0]
        assert body["logprob_start_len"] == -1  # tag is the last token: output position 0
        assert body["token_ids_logprob"] == [p.good_token_id, p.bad_token_id]
        assert body["sampling_params"] == {"max_new_tokens": 1, "temperature": 0.0}
        assert body["rid"] == "s-prm" and body["input_ids"][0] == srv.tokenizer.BOS
    else:
        _, path, body = srv.requests[-1]
        assert path == "/v1/score" and body["score_extraction_token"] == TAG


async def test_tag_before_the_end_reads_the_input_logprobs(servers: Any) -> None:
    srv = servers()
    p = prm(srv, suffix="\nThe end.")
    assert await p.score(sreq(GOOD_LAST)) == pytest.approx(0.8)
    assert await p.score(sreq(BAD_LAST, "s2")) == pytest.approx(0.2)
    body = srv.generate_bodies[0]
    ids = body["input_ids"]
    tag_id = srv.tokenizer.id_of(TAG)
    last_tag = max(i for i, t in enumerate(ids) if t == tag_id)
    assert last_tag < len(ids) - 1 and body["logprob_start_len"] == last_tag
    await p.aclose()


async def test_old_server_needs_a_tokenize_callable(servers: Any) -> None:
    srv = servers(version="old")
    p = prm(srv)
    with pytest.raises(BackendRequestError) as info:
        await p.score(sreq(GOOD_LAST))
    assert_one_line(info.value)
    assert "tokenize=" in str(info.value)
    await p.aclose()
    calls: list[str] = []

    async def tokenize(text: str) -> list[int]:
        calls.append(text)
        return srv.tokenizer.encode(text)

    with_tok = prm(srv, tokenize=tokenize)
    assert await with_tok.score(sreq(BAD_LAST)) == pytest.approx(0.2)
    assert calls[0] == TAG  # the tag id comes from the same tokenizer
    await with_tok.aclose()


async def test_old_server_score_mode_reads_the_last_position(servers: Any) -> None:
    srv = servers(version="old")
    p = prm(srv, mode="score")
    assert await p.score(sreq(BAD_LAST)) == pytest.approx(0.2)
    await p.aclose()
    suffixed = prm(srv, mode="score", suffix="\n")
    with pytest.raises(BackendRequestError) as info:
        await suffixed.score(sreq(BAD_LAST))
    assert_one_line(info.value)
    await suffixed.aclose()


async def test_wrong_tag_id_is_a_one_line_error(servers: Any) -> None:
    srv = servers()
    p = prm(srv, step_tag_id=999_999)
    with pytest.raises(BackendRequestError) as info:
        await p.score(sreq(GOOD_LAST))
    assert_one_line(info.value)
    assert "step_tag_id" in str(info.value)
    await p.aclose()


async def test_cancel_aborts_the_prm_request(servers: Any) -> None:
    srv = servers(accept_delay=0.3)
    p = prm(srv, tokenize=srv.tokenizer.encode)
    task = asyncio.create_task(p.score(sreq(GOOD_LAST, "slow")))
    await asyncio.sleep(0.1)
    await p.cancel("slow")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 1.0)
    assert srv.abort_calls[0]["rid"] == "slow-prm"
    await p.cancel("unknown")
    await p.aclose()


@pytest.mark.parametrize("fault", ["500", "garbage"])
async def test_server_errors_are_one_line(servers: Any, fault: str) -> None:
    srv = servers()
    p = prm(srv, tokenize=srv.tokenizer.encode)
    srv.set_fault(fault, "/generate")
    with pytest.raises(BackendRequestError) as info:
        await p.score(sreq(GOOD_LAST))
    assert_one_line(info.value)
    await p.aclose()


async def test_unreachable_prm_server() -> None:
    p = SGLangPRM(closed_port_url(), good_token_id=1, bad_token_id=2, mode="score")
    with pytest.raises(BackendUnavailableError) as info:
        await p.score(sreq(GOOD_LAST))
    assert_one_line(info.value)
    assert "--prm-url" in str(info.value)
    with pytest.raises(BackendUnavailableError):
        await p.health()
    await p.aclose()


# --------------------------------------------------------------------------- load and priority


async def test_prm_reports_the_reward_engine_queue(servers: Any) -> None:
    srv = servers(max_running=1, token_delay=0.3)
    p = prm(srv, tokenize=srv.tokenizer.encode)
    assert p.capabilities.reports_load and isinstance(p, LoadReporting)
    idle = await p.load()
    assert idle is not None and (idle.running, idle.waiting) == (0, 0)
    tasks = [asyncio.create_task(p.score(sreq(GOOD_LAST, f"q{i}"))) for i in range(3)]
    busiest = idle
    for _ in range(40):
        load = await p.load()
        assert load is not None
        if load.waiting > busiest.waiting:
            busiest = load
        if busiest.waiting == 2:
            break
        await asyncio.sleep(0.02)
    assert (busiest.running, busiest.waiting) == (1, 2)
    assert busiest.token_usage is not None and busiest.token_usage > 0
    assert [await t for t in tasks] == [pytest.approx(0.8)] * 3
    assert ("GET", "/v1/loads", None) in srv.requests
    await p.aclose()


async def test_prm_load_on_old_and_load_less_servers(servers: Any) -> None:
    old = servers(version="old", max_running=1, token_delay=0.3)
    p = prm(old, tokenize=old.tokenizer.encode)
    tasks = [asyncio.create_task(p.score(sreq(GOOD_LAST, f"q{i}"))) for i in range(2)]
    await asyncio.sleep(0.15)
    load = await p.load()
    assert load is not None and load.load_tokens is not None and load.load_tokens > 0
    await asyncio.gather(*tasks)
    assert [path for _, path, _ in old.requests].count("/v1/loads") == 1  # tried once, 404
    await p.load()
    assert [path for _, path, _ in old.requests].count("/v1/loads") == 1  # remembered
    await p.aclose()
    bare = servers()
    del bare.routes[("GET", "/v1/loads")]
    q = prm(bare)
    assert await q.load() is None
    await q.aclose()


@pytest.mark.parametrize("mode", ["generate", "score"])
async def test_prm_sends_the_request_priority(servers: Any, mode: str) -> None:
    srv = servers()
    p = prm(srv, mode=mode)
    await p.score(ScoreRequest(question="Q?", steps=GOOD_LAST, request_id="a", priority=107))
    _, path, body = srv.requests[-1]
    if mode == "generate":
        assert path == "/generate" and body["priority"] == 107
    else:  # SGLang's ScoringRequest has no priority field
        assert path == "/v1/score" and "priority" not in body
    await p.aclose()
    off = prm(srv, send_priority=False)
    await off.score(ScoreRequest(question="Q?", steps=GOOD_LAST, request_id="b", priority=107))
    assert "priority" not in srv.generate_bodies[-1]
    await off.aclose()


async def test_primary_scoring_overtakes_queued_speculation_on_the_server(servers: Any) -> None:
    """A full reward engine with priority scheduling runs the primary scoring request
    before speculative ones that reached it earlier (the client gate has room for all)."""
    srv = servers(max_running=1, token_delay=0.25, priority_scheduling=True)
    p = prm(srv, tokenize=srv.tokenizer.encode)
    done: list[str] = []

    async def score(rid: str, priority: int) -> None:
        await p.score(
            ScoreRequest(question="Q?", steps=GOOD_LAST, request_id=rid, priority=priority)
        )
        done.append(rid)

    async def until(running: int, waiting: int) -> None:
        for _ in range(500):  # the server's own counts, not a guessed sleep
            if srv._counts() == (running, waiting):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"server never reached {running} running, {waiting} waiting")

    tasks = [asyncio.create_task(score("spec-0", 0))]
    await until(1, 0)  # spec-0 runs
    tasks += [asyncio.create_task(score(f"spec-{i}", 0)) for i in (1, 2)]
    await until(1, 2)  # both wait on the server
    tasks.append(asyncio.create_task(score("primary", PRIMARY_PRIORITY)))
    await asyncio.gather(*tasks)
    # the two speculative requests may reach the server in either order
    assert done[:2] == ["spec-0", "primary"] and sorted(done[2:]) == ["spec-1", "spec-2"]
    await p.aclose()


async def test_a_server_refusing_priorities_is_a_one_line_error(servers: Any) -> None:
    srv = servers(abort_on_priority=True)
    p = prm(srv, tokenize=srv.tokenizer.encode)
    with pytest.raises(BackendRequestError) as info:
        await p.score(sreq(GOOD_LAST))
    assert_one_line(info.value)
    assert "send_priority=False" in str(info.value) and "status 503" in str(info.value)
    await p.aclose()
    off = prm(srv, tokenize=srv.tokenizer.encode, send_priority=False)
    assert await off.score(sreq(GOOD_LAST)) == pytest.approx(0.8)
    await off.aclose()


async def test_a_speculative_search_reads_the_prm_load_and_sends_priorities(
    servers: Any,
) -> None:
    """Through a whole search: the load-aware budget polls the reward engine's
    `/v1/loads`, and the search's scoring requests reach it with their priority."""
    srv = servers(token_delay=0.005)
    # policy steps long enough for the budget to poll the load a few times, and to
    # leave the reward engine mostly idle, so speculative scoring may go to it
    latency = 0.15
    reasoner = SpexReasoner(
        ScriptedBackend(latency=lambda _r: latency),
        prm(srv, tokenize=srv.tokenizer.encode),
        task="gsm8k",
        width=4,
        spex=SpexConfig(),
    )
    try:
        result = await reasoner.ainvoke("question: what is 6 x 7?")
    finally:
        await reasoner.aclose()
    assert result.answer in ("42", "41")
    assert any(path == "/v1/loads" for _, path, _ in srv.requests)
    priorities = [body["priority"] for body in srv.generate_bodies]
    assert any(p >= PRIMARY_PRIORITY for p in priorities)
