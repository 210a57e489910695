"""Tokens the engine generated for requests whose results were dropped (`AbortAccounting`).

SGLang reads them from the abort answer (`meta_info.completion_tokens`), the embedded
engine from the streamed `tokens_predicted`, OpenAI-compatible servers from the
streamed chunks; all over HTTP against fake servers that speak the real protocols
(the real llama-server's OpenAI API: tests/backends/test_embedded.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from backends.fake_llama_server import FakeLlamaServer
from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer

from spex_graph.backends.base import AbortAccounting, GenerationRequest
from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SGLangBackend
from spex_graph.bench.runner import abort_accounting
from spex_graph.errors import BackendRequestError, RequestCancelledError

PROMPT = "Question: 2 + 3?\nStep 1:"


def req(
    request_id: str, seeds: tuple[int, ...] = (1,), max_tokens: int = 2000
) -> GenerationRequest:
    return GenerationRequest(
        prompt=PROMPT, seeds=seeds, request_id=request_id, max_tokens=max_tokens
    )


@pytest.fixture
def sglang() -> Iterator[FakeSGLangServer]:
    server = FakeSGLangServer(token_delay=0.005).start()
    yield server  # type: ignore[misc]
    server.stop()


async def running(server: FakeSGLangServer, *rids: str) -> None:
    """Wait until the server runs every rid and has generated a few tokens."""
    for _ in range(500):
        if all(rid in server.live for rid in rids):
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never ran {rids}")


def engine_tokens(server: FakeSGLangServer, request_id: str) -> int:
    """What the server generated for every child of `request_id`."""
    return sum(n for rid, n in server.completion_tokens.items() if rid.startswith(request_id))


def test_capabilities_say_who_counts() -> None:
    sglang = SGLangBackend("http://127.0.0.1:1")
    embedded = EmbeddedBackend("0.5b")
    openai = OpenAICompatBackend("http://127.0.0.1:1", "m")
    plain = OpenAICompatBackend("http://127.0.0.1:1", "m", stream=False)
    assert isinstance(sglang, AbortAccounting) and abort_accounting(sglang) is sglang
    assert isinstance(embedded, AbortAccounting) and abort_accounting(embedded) is embedded
    assert abort_accounting(openai) is openai  # streams: counts what it saw
    assert abort_accounting(plain) is None  # drops the connection: no count comes back


async def test_sglang_counts_the_abort_answers_tokens(sglang: FakeSGLangServer) -> None:
    b = SGLangBackend(sglang.url)
    task = asyncio.create_task(b.generate(req("kill", seeds=(1, 2, 3))))
    await running(sglang, "kill-0000", "kill-0001", "kill-0002")
    await b.cancel("kill")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 2.0)
    counted = await b.aborted_tokens()
    assert sorted(sglang.aborted) == ["kill-0000", "kill-0001", "kill-0002"]
    assert counted == engine_tokens(sglang, "kill") > 3  # every child ran a while
    await b.aclose()


async def test_sglang_counts_a_caller_that_left_before_the_abort_answer(
    sglang: FakeSGLangServer,
) -> None:
    """The dispatcher cancels its task right after `cancel`: the answer arrives later."""
    b = SGLangBackend(sglang.url)
    task = asyncio.create_task(b.generate(req("gone")))
    await running(sglang, "gone-0000")
    await b.cancel("gone")
    task.cancel()
    with pytest.raises((asyncio.CancelledError, RequestCancelledError)):
        await task
    counted = await b.aborted_tokens()  # waits for the abort answer still on its way
    assert "gone-0000" in sglang.aborted
    assert counted == engine_tokens(sglang, "gone") > 0
    await b.aclose()


async def test_sglang_abandoned_request_is_aborted_and_counted(sglang: FakeSGLangServer) -> None:
    """A caller that times out (no `cancel`) still gets its request aborted and counted."""
    b = SGLangBackend(sglang.url)
    await b.health()  # connected and probed: the request goes out at once
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.generate(req("slow")), 0.3)
    counted = await b.aborted_tokens()
    assert "slow-0000" in sglang.aborted
    assert counted == engine_tokens(sglang, "slow") > 0
    await b.aclose()


async def test_sglang_delivered_completions_are_not_aborted_tokens(
    sglang: FakeSGLangServer,
) -> None:
    b = SGLangBackend(sglang.url)
    [c] = await b.generate(req("ok", max_tokens=12))
    assert c.completion_tokens == engine_tokens(sglang, "ok") > 0
    assert await b.aborted_tokens() == 0
    await b.aclose()


# --------------------------------------------------------------------------- embedded


@pytest.fixture
def llama() -> Iterator[Any]:
    servers: list[FakeLlamaServer] = []

    def make(**kwargs: Any) -> tuple[FakeLlamaServer, EmbeddedBackend]:
        server = FakeLlamaServer(**kwargs).start()
        servers.append(server)  # type: ignore[arg-type]
        backend = EmbeddedBackend("0.5b", parallel=8)

        async def running() -> str:  # the fake stands in for the managed llama-server
            return server.url

        backend._ensure_server = running  # type: ignore[method-assign]
        return server, backend  # type: ignore[return-value]

    yield make
    for s in servers:
        s.stop()


async def test_embedded_counts_the_streamed_tokens_of_a_cancelled_request(llama: Any) -> None:
    server, b = llama(stall_after=5)
    task = asyncio.ensure_future(b.generate(req("long", seeds=(1, 2, 3))))  # one call, n_cmpl 3
    for _ in range(200):
        if server.decoded and sum(server.decoded[0]) == 15:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the last events reach the client
    await b.cancel("long")
    with pytest.raises(RequestCancelledError):
        await task
    assert server.decoded == [[5, 5, 5]]
    assert await b.aborted_tokens() == 15


async def test_embedded_counts_siblings_dropped_by_a_failed_call(llama: Any) -> None:
    """Seeds 1 and 5 are two calls; the seed-5 call fails, so the seed-1 tokens are dropped."""
    server, b = llama(fail_seeds=frozenset({5}), fail_after=2)
    with pytest.raises(BackendRequestError, match="fake failure"):
        await b.generate(req("pair", seeds=(1, 5), max_tokens=3))
    assert sorted(map(sum, server.decoded)) == [2, 3]
    assert await b.aborted_tokens() == 5


async def test_embedded_delivered_completions_are_not_aborted_tokens(llama: Any) -> None:
    _server, b = llama()
    completions = await b.generate(req("ok", seeds=(1, 2), max_tokens=4))
    assert [c.completion_tokens for c in completions] == [4, 4]
    assert await b.aborted_tokens() == 0


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture
def openai() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(token_delay=0.01).start()
    yield server  # type: ignore[misc]
    server.stop()


def generated(server: FakeOpenAIServer, request_id: str) -> int:
    """What the server generated for every continuation of `request_id`."""
    return sum(n for rid, n in server.generated.items() if rid.startswith(request_id))


@pytest.mark.parametrize("chat", [False, True])
async def test_openai_counts_the_streamed_tokens_of_a_cancelled_request(
    openai: FakeOpenAIServer, chat: bool
) -> None:
    b = OpenAICompatBackend(openai.url, "fake-model", chat=chat)
    task = asyncio.create_task(b.generate(req("kill", seeds=(1, 2, 3))))
    for _ in range(300):  # until every continuation has streamed a while
        if len(openai.generated) == 3 and min(openai.generated.values()) >= 5:
            break
        await asyncio.sleep(0.01)
    await b.cancel("kill")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 2.0)
    counted = await b.aborted_tokens()
    await asyncio.sleep(0.1)  # the server notices the closed connections
    assert sorted(openai.aborted) == ["kill-0000", "kill-0001", "kill-0002"]
    # a lower bound: a token each may be generated after its last chunk arrived
    assert generated(openai, "kill") - 3 <= counted <= generated(openai, "kill")
    assert counted >= 12  # each had generated >= 5, a token each may be in flight
    await b.aclose()


@pytest.mark.parametrize("chat", [False, True])
async def test_openai_streamed_answers_equal_plain_ones(
    openai: FakeOpenAIServer, chat: bool
) -> None:
    """Streaming changes nothing the caller sees: text, finish, counts and logprobs."""
    request = GenerationRequest(
        prompt=PROMPT,
        seeds=(4, 5),
        request_id="same",
        max_tokens=12,
        stop=("w3",),
        logprobs=True,
        top_logprobs=2,
    )
    streamed = OpenAICompatBackend(openai.url, "fake-model", chat=chat)
    plain = OpenAICompatBackend(openai.url, "fake-model", chat=chat, stream=False)
    a = await streamed.generate(request)
    b = await plain.generate(dataclasses.replace(request, request_id="same2"))
    assert [c.text for c in a] == [c.text for c in b]
    assert [c.finish_reason for c in a] == [c.finish_reason for c in b]
    assert [c.completion_tokens for c in a] == [c.completion_tokens for c in b]
    assert [c.prompt_tokens for c in a] == [c.prompt_tokens for c in b]
    assert [c.token_logprobs for c in a] == [c.token_logprobs for c in b]
    assert [c.top_logprobs for c in a] == [c.top_logprobs for c in b]
    assert all(c.token_logprobs for c in a)
    assert await streamed.aborted_tokens() == 0  # delivered, not dropped
    bodies = [body for _, body in openai.bodies]
    assert bodies[0]["stream"] is True and bodies[0]["stream_options"] == {"include_usage": True}
    assert "stream" not in bodies[-1]
    await streamed.aclose()
    await plain.aclose()


async def test_openai_abandoned_request_is_counted(openai: FakeOpenAIServer) -> None:
    """A caller that times out (no `cancel`) drops the stream; its tokens still count."""
    b = OpenAICompatBackend(openai.url, "fake-model")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.generate(req("slow")), 0.3)
    counted = await b.aborted_tokens()
    await asyncio.sleep(0.1)
    assert "slow-0000" in openai.aborted
    assert 0 < counted <= generated(openai, "slow")
    await b.aclose()
