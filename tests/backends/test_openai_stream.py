"""Edge cases of the OpenAI-compatible backend's stream parsing, on scripted bodies
(httpx MockTransport): the fake server of test_aborted_tokens.py covers the HTTP side."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.errors import BackendRequestError, TransientBackendError


def _backend(body: str, chat: bool = False) -> tuple[OpenAICompatBackend, list[int]]:
    """A backend whose server answers every request with the event-stream `body`;
    the list counts the connections (requests) it saw."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, content=body.encode(), headers=headers)

    backend = OpenAICompatBackend("http://server.test", "m", chat=chat)
    backend._http._client = httpx.AsyncClient(  # type: ignore[attr-defined]
        base_url="http://server.test", transport=httpx.MockTransport(handler)
    )
    return backend, seen


def _chunk(text: str, finish: str | None = None, **extra: Any) -> str:
    choice = {"index": 0, "text": text, "finish_reason": finish, **extra}
    return f"data: {json.dumps({'choices': [choice]})}\n\n"


def _request(rid: str) -> GenerationRequest:
    return GenerationRequest(prompt="Q: 2+3?\n", seeds=(1,), request_id=rid, max_tokens=16)


async def test_a_multi_line_event_and_comments_are_one_chunk() -> None:
    # a JSON chunk spread over several data lines (joined with newlines, per the spec)
    pretty = json.dumps(
        {"choices": [{"index": 0, "text": "Hello", "finish_reason": None}]}, indent=1
    )
    event = "".join(f"data: {line}\n" for line in pretty.splitlines()) + "\n"
    body = ": keep-alive\n\n" + event + _chunk(" world", "stop") + "data: [DONE]\n\n"
    backend, _ = _backend(body)
    [c] = await backend.generate(_request("a"))
    assert c.text == "Hello world"
    assert c.finish_reason == "stop" and c.completion_tokens == 2


async def test_an_error_line_mid_stream_fails_the_request() -> None:
    # llama.cpp sends `error: {...}` (not a data line) when generation fails midway
    body = _chunk("Hello") + 'error: {"code": 500, "message": "out of KV cache"}\n\n'
    body += "data: [DONE]\n\n"
    backend, _ = _backend(body)
    with pytest.raises(BackendRequestError, match=r"mid-stream.*out of KV cache"):
        await backend.generate(_request("b"))


async def test_a_stream_cut_short_is_a_retryable_failure_not_an_answer() -> None:
    backend, _ = _backend(_chunk("Hello") + _chunk(" wor"))  # no finish_reason, no [DONE]
    with pytest.raises(TransientBackendError, match="before the answer finished"):
        await backend.generate(_request("c"))


async def test_completion_logprobs_in_the_chat_shape_still_count_tokens() -> None:
    entry = {"token": "Hi", "logprob": -0.5, "top_logprobs": []}
    body = _chunk("Hi", logprobs={"content": [entry]}) + _chunk(" there", "length")
    backend, _ = _backend(body + "data: [DONE]\n\n")
    [c] = await backend.generate(_request("d"))
    assert c.text == "Hi there" and c.completion_tokens == 2 and c.finish_reason == "length"


async def test_what_follows_done_is_read_and_ignored() -> None:
    body = _chunk("ok", "stop") + "data: [DONE]\n\n" + ": trailing\n\n"
    backend, seen = _backend(body)
    for rid in ("e1", "e2"):
        [c] = await backend.generate(_request(rid))
        assert c.text == "ok"
    assert len(seen) == 2
