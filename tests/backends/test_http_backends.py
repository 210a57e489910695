"""SGLang- and OpenAI-specific behaviour of the HTTP backends, and their error paths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from backends.conformance import assert_one_line
from backends.fake_http import closed_port_url
from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import SAMPLING_KEYS, FakeSGLangServer

from spex_graph.backends._common import completion_top_logprobs, make_request
from spex_graph.backends.base import Backend, GenerationRequest
from spex_graph.backends.load import EngineLoad
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SD_VERIFY_KNEE_TOKENS, SGLangBackend
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
)

PROMPT = "Question: 2 + 3?\nStep 1:"


async def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until `cond()` holds (the engine side finishes after the client returns)."""
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    assert cond()


def req(request_id: str = "r", **kwargs: Any) -> GenerationRequest:
    base: dict[str, Any] = {"prompt": PROMPT, "seeds": (1,), "request_id": request_id}
    base.update(kwargs)
    return GenerationRequest(**base)


@pytest.fixture
def sglang() -> Iterator[Callable[..., FakeSGLangServer]]:
    servers: list[FakeSGLangServer] = []

    def make(**kwargs: Any) -> FakeSGLangServer:
        server = FakeSGLangServer(**kwargs).start()
        servers.append(server)  # type: ignore[arg-type]
        return server  # type: ignore[return-value]

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


# --------------------------------------------------------------------------- SGLang requests


async def test_sglang_sends_one_request_per_seed_with_rid_seed_priority(sglang: Any) -> None:
    srv = sglang()
    b = SGLangBackend(srv.url)
    out = await b.generate(
        req("abc", seeds=(7, 8), stop=("\n\n",), priority=3, max_tokens=5, logprobs=True)
    )
    await b.aclose()
    assert len(out) == 2
    bodies = sorted(srv.generate_bodies, key=lambda body: body["rid"])
    assert [body["rid"] for body in bodies] == ["abc-0000", "abc-0001"]
    assert [body["sampling_params"]["sampling_seed"] for body in bodies] == [7, 8]
    for body in bodies:
        assert body["text"] == PROMPT
        assert body["priority"] == 3
        assert body["return_logprob"] is True and body["logprob_start_len"] == -1
        assert set(body["sampling_params"]) <= SAMPLING_KEYS | {"sampling_seed"}
        assert body["sampling_params"]["max_new_tokens"] == 5
        assert body["sampling_params"]["stop"] == ["\n\n"]
        assert "n" not in body["sampling_params"]
    assert all(len(c.token_logprobs) == c.completion_tokens == 5 for c in out)


async def test_sglang_send_priority_and_seed_off(sglang: Any) -> None:
    srv = sglang()
    b = SGLangBackend(srv.url, send_priority=False, send_seed=False)
    await b.generate(req(max_tokens=2))
    await b.aclose()
    [body] = srv.generate_bodies
    assert "priority" not in body and "sampling_seed" not in body["sampling_params"]
    assert not b.capabilities.seeded


async def test_sglang_old_server_gets_no_seed_and_reports_unseeded(sglang: Any) -> None:
    srv = sglang(version="old")
    b = SGLangBackend(srv.url)
    assert b.capabilities.seeded  # optimistic until probed
    await b.generate(req(seeds=(1, 2), max_tokens=3))
    assert not b.capabilities.seeded
    assert b.server_version == "0.5.2"
    assert all("sampling_seed" not in body["sampling_params"] for body in srv.generate_bodies)
    await b.aclose()


async def test_sglang_retries_without_seed_on_400_naming_it(sglang: Any) -> None:
    srv = sglang(version="old")
    srv.set_fault("500", "/get_server_info")  # no server info: the probe learns nothing
    b = SGLangBackend(srv.url)
    [c] = await b.generate(req(max_tokens=3))
    assert c.completion_tokens == 3
    assert not b.capabilities.seeded
    assert ["sampling_seed" in body["sampling_params"] for body in srv.generate_bodies] == [
        True,
        False,
    ]
    await b.generate(req("r2", max_tokens=3))  # no more seeds, no more 400s
    assert len(srv.generate_bodies) == 3
    await b.aclose()


async def test_sglang_forced_new_api_on_old_server_is_a_one_line_400(sglang: Any) -> None:
    srv = sglang(version="old")
    b = SGLangBackend(srv.url, api_version="new")
    with pytest.raises(BackendRequestError) as info:
        await b.generate(req())
    assert_one_line(info.value)
    assert "HTTP 400" in str(info.value) and "sampling_seed" in str(info.value)
    await b.aclose()


async def test_sglang_without_deterministic_inference_is_unseeded(sglang: Any) -> None:
    srv = sglang(deterministic=False)
    b = SGLangBackend(srv.url)
    await b.health()
    assert not b.capabilities.seeded
    await b.aclose()


async def test_sglang_with_speculative_decoding_reports_its_compute_knee(sglang: Any) -> None:
    plain = SGLangBackend(sglang().url)
    await plain.health()
    assert plain.capabilities.free_batch is None  # unknown: no knee rule
    srv = sglang(server_args={"speculative_algorithm": "EAGLE3", "speculative_num_draft_tokens": 8})
    b = SGLangBackend(srv.url)
    assert b.capabilities.free_batch is None
    await b.health()
    assert b.capabilities.free_batch == SD_VERIFY_KNEE_TOKENS // 8
    assert b.capabilities.speculative_decoding and not plain.capabilities.speculative_decoding
    given = SGLangBackend(srv.url, free_batch=40)
    await given.health()
    assert given.capabilities.free_batch == 40  # the user's figure wins
    for backend in (plain, b, given):
        await backend.aclose()


async def test_sglang_parses_finish_reasons_and_top_logprobs(sglang: Any) -> None:
    srv = sglang()
    b = SGLangBackend(srv.url)
    [stopped] = await b.generate(req(seeds=(3,), max_tokens=200, stop=("\n",)))
    assert stopped.finish_reason == "stop" and stopped.stop_matched == "\n"
    assert "\n" not in stopped.text
    [capped] = await b.generate(req("r2", max_tokens=3))
    assert capped.finish_reason == "length" and capped.stop_matched is None
    [top] = await b.generate(
        make_request(prompt=PROMPT, seeds=(1,), request_id="r3", max_tokens=2, top_logprobs=3)
    )
    tops = completion_top_logprobs(top)
    assert len(tops) == 2 and all(len(pos) == 3 for pos in tops)
    assert all(isinstance(tok, str) and tok for tok, _ in tops[0])
    assert tops[0][0][1] >= tops[0][1][1]
    assert srv.generate_bodies[-1]["return_text_in_logprobs"] is True
    await b.aclose()


# --------------------------------------------------------------------------- SGLang abort


async def test_fake_sglang_abort_semantics(sglang: Any) -> None:
    """The fake follows SGLANG.md: exact live rid only, then prefix match; always 200."""
    srv = sglang(token_delay=0.005)
    async with httpx.AsyncClient(base_url=srv.url) as client:

        async def gen(rid: str) -> Any:
            body = {"text": "x", "rid": rid, "sampling_params": {"max_new_tokens": 400}}
            return (await client.post("/generate", json=body, timeout=10)).json()

        tasks = [asyncio.create_task(gen(r)) for r in ("a1", "a10", "b1")]
        await asyncio.sleep(0.1)
        assert (await client.post("/abort_request", json={"rid": "a"})).status_code == 200
        await asyncio.sleep(0.05)
        assert srv.aborted == []  # "a" is not a live rid: dropped
        await client.post("/abort_request", json={"rid": "a1"})
        a1, a10 = await asyncio.gather(*tasks[:2])
        assert a1["meta_info"]["finish_reason"]["type"] == "abort"
        assert a10["meta_info"]["finish_reason"]["type"] == "abort"  # prefix match
        assert a1["meta_info"]["finish_reason"]["message"] == "Aborted"
        assert not tasks[2].done()
        await client.post("/abort_request", json={"rid": "", "abort_all": True})
        b1 = await tasks[2]
        assert b1["meta_info"]["finish_reason"]["type"] == "abort"


async def test_fake_sglang_strict_params_and_n_children(sglang: Any) -> None:
    """Unknown sampling_params keys are a 400; n>1 children get uuids (not abortable by rid)."""
    srv = sglang(token_delay=0.005)
    async with httpx.AsyncClient(base_url=srv.url) as client:
        bad = await client.post(
            "/generate", json={"text": "x", "sampling_params": {"max_new_tokens": 1, "bogus": 1}}
        )
        assert bad.status_code == 400 and "unknown field `bogus`" in bad.text
        body = {"text": "x", "rid": "p", "sampling_params": {"max_new_tokens": 30, "n": 2}}
        task = asyncio.create_task(client.post("/generate", json=body, timeout=10))
        await asyncio.sleep(0.05)
        await client.post("/abort_request", json={"rid": "p"})
        out = (await task).json()
        assert isinstance(out, list) and len(out) == 2
        assert all(o["meta_info"]["finish_reason"]["type"] == "length" for o in out)
        assert all(o["meta_info"]["id"] != "p" for o in out)


async def test_sglang_cancel_aborts_every_child_on_the_engine(sglang: Any) -> None:
    srv = sglang(token_delay=0.005)
    b = SGLangBackend(srv.url)
    task = asyncio.create_task(b.generate(req("kill", seeds=(1, 2, 3), max_tokens=2000)))
    await asyncio.sleep(0.15)
    await b.cancel("kill")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 1.0)
    await eventually(lambda: len(srv.aborted) == 3)
    assert sorted(srv.aborted) == ["kill-0000", "kill-0001", "kill-0002"]
    assert {c["rid"] for c in srv.abort_calls} >= {"kill-0000", "kill-0001", "kill-0002"}
    await b.aclose()


async def test_sglang_cancel_pops_a_queued_request(sglang: Any) -> None:
    srv = sglang(token_delay=0.005, max_running=1)
    b = SGLangBackend(srv.url)
    first = asyncio.create_task(b.generate(req("first", max_tokens=2000)))
    await asyncio.sleep(0.1)
    queued = asyncio.create_task(b.generate(req("queued", max_tokens=5)))
    await asyncio.sleep(0.1)
    load = await b.load()
    assert load is not None and (load.running, load.waiting) == (1, 1)
    await b.cancel("queued")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(queued, 1.0)
    await eventually(lambda: "queued-0000" in srv.aborted)
    assert not first.done()
    await b.cancel("first")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(first, 1.0)
    await b.aclose()


async def test_sglang_abort_that_overtakes_its_request_is_resent(sglang: Any) -> None:
    srv = sglang(accept_delay=0.25, token_delay=0.005)
    b = SGLangBackend(srv.url, abort_grace=2.0)
    task = asyncio.create_task(b.generate(req("early", max_tokens=2000)))
    await asyncio.sleep(0.05)  # the request is on the wire, not yet held by the server
    await b.cancel("early")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(task, 1.5)
    await eventually(lambda: bool(srv.aborted))
    assert srv.aborted == ["early-0000"]
    assert len(srv.abort_calls) >= 2  # the first abort was dropped, a later one worked
    await b.aclose()


async def test_sglang_caller_cancellation_aborts_on_engine(sglang: Any) -> None:
    srv = sglang(token_delay=0.005)
    b = SGLangBackend(srv.url)
    task = asyncio.create_task(b.generate(req("gone", seeds=(1, 2), max_tokens=2000)))
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: len(srv.aborted) == 2)
    assert sorted(srv.aborted) == ["gone-0000", "gone-0001"]
    await b.aclose()


async def test_sglang_aclose_aborts_engine_work(sglang: Any) -> None:
    srv = sglang(token_delay=0.005)
    b = SGLangBackend(srv.url)
    task = asyncio.create_task(b.generate(req("bye", max_tokens=2000)))
    await asyncio.sleep(0.15)
    await b.aclose()
    with pytest.raises((RequestCancelledError, asyncio.CancelledError)):
        await task
    await eventually(lambda: bool(srv.aborted))
    assert srv.aborted == ["bye-0000"]


async def test_sglang_server_side_abort_with_status_is_a_request_error(sglang: Any) -> None:
    srv = sglang()
    srv.set_fault("abort503", "/generate")
    b = SGLangBackend(srv.url)
    with pytest.raises(BackendRequestError) as info:
        await b.generate(req())
    assert_one_line(info.value)
    assert "queue is full" in str(info.value) and "503" in str(info.value)
    await b.aclose()


async def test_sglang_duplicate_request_id_in_flight(sglang: Any) -> None:
    srv = sglang(token_delay=0.005)
    b = SGLangBackend(srv.url)
    task = asyncio.create_task(b.generate(req("dup", max_tokens=2000)))
    await asyncio.sleep(0.05)
    with pytest.raises(BackendRequestError):
        await b.generate(req("dup"))
    await b.cancel("dup")
    with pytest.raises(RequestCancelledError):
        await task
    await b.aclose()


# --------------------------------------------------------------------------- SGLang load


async def test_sglang_load_new_old_and_absent(sglang: Any) -> None:
    new, old = sglang(), sglang(version="old")
    b_new, b_old = SGLangBackend(new.url), SGLangBackend(old.url)
    load = await b_new.load()
    assert load == EngineLoad(0, 0, 0.0, load.raw if load else {})
    assert load is not None and load.raw["loads"][0]["dp_rank"] == 0
    old_load = await b_old.load()
    assert old_load is not None and old_load.load_tokens == 0 and old_load.token_usage is None
    assert ("GET", "/v1/loads") in [(m, p) for m, p, _ in old.requests]  # tried first, 404
    bare = sglang()
    del bare.routes[("GET", "/v1/loads")]
    b_bare = SGLangBackend(bare.url)
    assert await b_bare.load() is None
    for b in (b_new, b_old, b_bare):
        await b.aclose()


def test_engine_load_parsers() -> None:
    two = {
        "loads": [
            {
                "num_running_reqs": 2,
                "num_waiting_reqs": 1,
                "num_used_tokens": 30,
                "max_total_num_tokens": 100,
            },
            {
                "num_running_reqs": 1,
                "num_waiting_reqs": 0,
                "num_used_tokens": 10,
                "max_total_num_tokens": 100,
            },
        ]
    }
    load = EngineLoad.from_sglang_loads(two)
    assert load is not None and (load.running, load.waiting, load.token_usage) == (3, 1, 0.2)
    only_usage = EngineLoad.from_sglang_loads(
        {"loads": [{"num_running_reqs": 1, "token_usage": 0.5}, {"token_usage": 0.7}]}
    )
    assert only_usage is not None and only_usage.token_usage == pytest.approx(0.6)
    per_rank = EngineLoad.from_sglang_get_load(
        [{"dp_rank": 0, "num_reqs": 5, "num_waiting_reqs": 2, "num_tokens": 700}]
    )
    assert per_rank is not None and (per_rank.running, per_rank.waiting) == (3, 2)
    assert per_rank.load_tokens == 700
    assert EngineLoad.from_sglang_loads({"nope": 1}) is None
    assert EngineLoad.from_sglang_get_load("garbage") is None


# --------------------------------------------------------------------------- OpenAI-compatible


async def test_openai_completions_body_and_request_ids(openai: FakeOpenAIServer) -> None:
    b = OpenAICompatBackend(openai.url + "/v1/", "fake-model")
    out = await b.generate(req("oa", seeds=(4, 5), max_tokens=3, logprobs=True, stop=("\n",)))
    await b.aclose()
    assert len(out) == 2 and all(len(c.token_logprobs) == 3 for c in out)
    bodies = [body for path, body in openai.bodies if path == "/v1/completions"]
    assert sorted(body["seed"] for body in bodies) == [4, 5]
    assert all(body["n"] == 1 and body["prompt"] == PROMPT for body in bodies)
    assert all(body["logprobs"] == 0 and body["stop"] == ["\n"] for body in bodies)
    ids = sorted(h.get("X-Request-Id") or h.get("x-request-id") for h in openai.headers_seen)
    assert ids == ["oa-0000", "oa-0001"]


async def test_openai_chat_messages_ask_for_the_next_step(openai: FakeOpenAIServer) -> None:
    b = OpenAICompatBackend(openai.url, "fake-model", chat=True)
    r = req(
        "c1",
        messages=(("system", "Be brief."), ("user", "What is 2 + 3?")),
        assistant_prefix="Step 1: add.",
        max_tokens=3,
    )
    [c] = await b.generate(r)
    assert c.completion_tokens == 3
    _, body = openai.bodies[-1]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == "Step 1: add."
    assert "next step" in body["messages"][3]["content"]
    assert "continue_final_message" not in body
    await b.aclose()

    cont = OpenAICompatBackend(openai.url, "fake-model", chat=True, continue_final_message=True)
    await cont.generate(
        req("c2", messages=r.messages, assistant_prefix="Step 1: add.", max_tokens=2)
    )
    _, body = openai.bodies[-1]
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1: add."}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    await cont.aclose()


async def test_openai_health_names_the_served_model(openai: FakeOpenAIServer) -> None:
    b = OpenAICompatBackend(openai.url, "other-model")
    with pytest.raises(BackendUnavailableError) as info:
        await b.health()
    assert_one_line(info.value)
    assert "fake-model" in str(info.value) and "--model" in str(info.value)
    with pytest.raises(BackendRequestError) as info2:
        await b.generate(req())
    assert_one_line(info2.value)
    assert "404" in str(info2.value)
    assert await OpenAICompatBackend(openai.url, "fake-model").served_models() == ["fake-model"]
    await b.aclose()


async def test_openai_health_falls_back_to_health_endpoint(openai: FakeOpenAIServer) -> None:
    del openai.routes[("GET", "/v1/models")]
    b = OpenAICompatBackend(openai.url, "fake-model")
    await b.health()
    del openai.routes[("GET", "/health")]
    with pytest.raises(BackendUnavailableError) as info:
        await b.health()
    assert_one_line(info.value)
    await b.aclose()


def test_constructor_errors() -> None:
    with pytest.raises(ConfigError):
        SGLangBackend("localhost:30000")
    with pytest.raises(ConfigError):
        SGLangBackend("http://x", api_version="v9")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        OpenAICompatBackend("http://x", "")


# --------------------------------------------------------------------------- error paths

BACKENDS: dict[str, Callable[[str, float], Backend]] = {
    "sglang": lambda url, t: SGLangBackend(url, timeout=t),
    "openai": lambda url, t: OpenAICompatBackend(url, "fake-model", timeout=t),
    "openai-chat": lambda url, t: OpenAICompatBackend(url, "fake-model", chat=True, timeout=t),
}
GEN_PATH = {
    "sglang": "/generate",
    "openai": "/v1/completions",
    "openai-chat": "/v1/chat/completions",
}


def _server(kind: str) -> FakeSGLangServer | FakeOpenAIServer:
    return (FakeSGLangServer() if kind == "sglang" else FakeOpenAIServer()).start()  # type: ignore[return-value]


@pytest.mark.parametrize("kind", list(BACKENDS))
@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("500", BackendRequestError, ["HTTP 500", "device-side assert", "server log"]),
        ("garbage", BackendRequestError, ["non-JSON", "proxy login"]),
        ("hang", BackendUnavailableError, ["did not answer", "within 0.3 s", "timeout"]),
        ("503", BackendUnavailableError, ["HTTP 503", "not ready"]),
        ("drop", BackendUnavailableError, ["dropped the connection"]),
    ],
)
async def test_generate_error_paths_are_one_line(
    kind: str, fault: str, error: type[Exception], words: list[str]
) -> None:
    srv = _server(kind)
    try:
        b = BACKENDS[kind](srv.url, 0.3)
        await b.health()
        srv.set_fault(fault, GEN_PATH[kind])
        with pytest.raises(error) as info:
            await b.generate(req(max_tokens=3))
        assert_one_line(info.value)
        for word in words:
            assert word in str(info.value), str(info.value)
        srv.set_fault(None)
        [ok] = await b.generate(req("after", max_tokens=3))  # the backend still works
        assert ok.completion_tokens == 3
        await b.aclose()
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", list(BACKENDS))
async def test_connection_refused_names_the_fix(kind: str) -> None:
    b = BACKENDS[kind](closed_port_url(), 5.0)
    for call in (b.health, lambda: b.generate(req())):
        with pytest.raises(BackendUnavailableError) as info:
            await call()
        assert_one_line(info.value)
        assert "connection refused" in str(info.value)
        assert "--backend-url" in str(info.value)
    await b.aclose()


async def test_sglang_health_503_and_not_sglang(sglang: Any) -> None:
    srv = sglang()
    srv.set_fault("503", "/health")
    b = SGLangBackend(srv.url)
    with pytest.raises(BackendUnavailableError) as info:
        await b.health()
    assert_one_line(info.value)
    assert "not healthy" in str(info.value)
    srv.set_fault(None)
    del srv.routes[("GET", "/health")]
    with pytest.raises(BackendUnavailableError) as info:
        await b.health()
    assert "HTTP 404" in str(info.value) and "SGLang server" in str(info.value)
    await b.aclose()
