"""LogprobJudge on every backend kind, and its logprob fallbacks.

The fake judge model answers a correct step with " Yes" 0.6 / " No" 0.3 /
" Maybe" 0.1 (expected reward 0.6 / 0.9) and a step containing "wrong" with
" No" 0.7 / " Yes" 0.2 / " Maybe" 0.1 (expected 0.2 / 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from backends.fake_chat_model import SeededFakeChat
from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer

from spex_graph.backends._common import make_completion, requested_top_logprobs
from spex_graph.backends.base import Backend, BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.langchain_chat import LangChainChatBackend
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SGLangBackend
from spex_graph.errors import ConfigError
from spex_graph.rewards.base import RewardModel, ScoreRequest
from spex_graph.rewards.judge import DEFAULT_JUDGE_TEMPLATE, LogprobJudge

RIGHT = 0.6 / 0.9
WRONG = 0.2 / 0.9


def sreq(last: str, request_id: str = "j") -> ScoreRequest:
    return ScoreRequest(
        question="What is 2 + 3?", steps=("Step 1: add 2 and 3.", last), request_id=request_id
    )


@pytest.fixture(scope="module")
def sglang_server() -> Iterator[FakeSGLangServer]:
    with FakeSGLangServer() as s:
        yield s  # type: ignore[misc]


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s  # type: ignore[misc]


@pytest.fixture(params=["sglang", "openai", "openai-chat", "langchain"])
def backend_factory(request: pytest.FixtureRequest) -> Callable[[], Backend]:
    if request.param == "sglang":
        url = request.getfixturevalue("sglang_server").url
        return lambda: SGLangBackend(url)
    if request.param.startswith("openai"):
        url = request.getfixturevalue("openai_server").url
        chat = request.param == "openai-chat"
        return lambda: OpenAICompatBackend(url, "fake-model", chat=chat)
    return lambda: LangChainChatBackend(SeededFakeChat())


async def test_judge_reads_p_yes_over_p_yes_plus_no(backend_factory: Callable[[], Backend]) -> None:
    judge = LogprobJudge(backend_factory(), owns_backend=True)
    assert isinstance(judge, RewardModel)
    assert await judge.score(sreq("Step 2: 2 + 3 = 5.")) == pytest.approx(RIGHT)
    assert await judge.score(sreq("Step 2: 2 + 3 = 6, which is wrong.", "j2")) == pytest.approx(
        WRONG
    )
    await judge.aclose()


async def test_judge_request_shape(sglang_server: FakeSGLangServer) -> None:
    judge = LogprobJudge(SGLangBackend(sglang_server.url), owns_backend=True, top_logprobs=4)
    await judge.score(sreq("Step 2: fine.", "shape"))
    body = next(b for b in sglang_server.generate_bodies if b["rid"] == "shape-judge-0000")
    assert body["sampling_params"]["max_new_tokens"] == 1
    assert body["sampling_params"]["temperature"] == 0.0
    assert body["top_logprobs_num"] == 4 and body["return_logprob"] is True
    assert body["text"].endswith("Is this step correct? Answer Yes or No.\nAnswer:")
    await judge.aclose()


@dataclass
class StubBackend:
    """Returns a scripted completion; records calls and cancels."""

    completion: Completion
    name: str = "stub"
    capabilities: BackendCapabilities = BackendCapabilities(can_abort=True, logprobs=True)
    requests: list[GenerationRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        self.requests.append(request)
        return [self.completion]

    async def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    async def health(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def judge_of(**completion: Any) -> tuple[LogprobJudge, StubBackend]:
    stub = StubBackend(make_completion(finish_reason="length", **completion))
    return LogprobJudge(stub), stub


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        # top logprobs with both answers: exact ratio, case/space variants summed
        (
            {
                "text": " Yes",
                "top_logprobs": (
                    ((" Yes", math.log(0.5)), ("yes", math.log(0.1)), (" No", math.log(0.2))),
                ),
            },
            0.6 / 0.8,
        ),
        # only "yes" in the top list: P(no) bounded by the smallest listed prob
        (
            {"text": " Yes", "top_logprobs": (((" Yes", math.log(0.9)), (" So", math.log(0.05))),)},
            0.9 / 0.95,
        ),
        # no top logprobs: the generated token's logprob
        ({"text": " Yes", "token_logprobs": (math.log(0.7),)}, 0.7),
        ({"text": " No", "token_logprobs": (math.log(0.8),)}, pytest.approx(0.2)),
        # no logprobs at all: the text
        ({"text": "Yes, it is."}, 1.0),
        ({"text": "no"}, 0.0),
        ({"text": " Maybe", "token_logprobs": (math.log(0.9),)}, 0.5),
    ],
)
async def test_judge_fallbacks(completion: dict[str, Any], expected: float) -> None:
    judge, stub = judge_of(**completion)
    assert await judge.score(sreq("Step 2: fine.")) == pytest.approx(expected)
    assert requested_top_logprobs(stub.requests[0]) == 5


async def test_judge_cancel_and_prompt_fields() -> None:
    judge, stub = judge_of(text=" Yes")
    await judge.cancel("abc")
    assert stub.cancelled == ["abc-judge"]
    custom = LogprobJudge(stub, template="{task}|{steps}|{previous}|{step}|{unknown}")
    prompt = custom.prompt_for(
        ScoreRequest(question="q", steps=("a", "b"), request_id="x", task="gsm8k")
    )
    assert prompt == "gsm8k|a\nb|a|b|{unknown}"
    first = LogprobJudge(stub).prompt_for(ScoreRequest(question="q", steps=("a",), request_id="x"))
    assert "Solution so far:\n(none)" in first
    assert DEFAULT_JUDGE_TEMPLATE.endswith("Answer:")
    with pytest.raises(ConfigError):
        LogprobJudge(stub, yes=" Yes", no="yes")
    assert judge.capabilities.can_abort and judge.capabilities.uses_engine
