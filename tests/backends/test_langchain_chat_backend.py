"""LangChainChatBackend specifics: messages, seed modes, options, errors."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from backends.conformance import assert_one_line
from backends.fake_chat_model import SeededFakeChat
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from spex_graph.backends._common import completion_top_logprobs, make_request
from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.langchain_chat import LangChainChatBackend
from spex_graph.errors import BackendRequestError, BackendUnavailableError, ConfigError


def req(**kwargs: Any) -> GenerationRequest:
    base: dict[str, Any] = {
        "prompt": "<chat>Q<assistant>Step 1.",
        "seeds": (1,),
        "request_id": "lc",
        "messages": (("system", "Be brief."), ("user", "What is 2 + 3?")),
        "assistant_prefix": "Step 1.",
    }
    base.update(kwargs)
    return GenerationRequest(**base)


def test_messages_carry_the_partial_solution_and_ask_for_one_step() -> None:
    b = LangChainChatBackend(SeededFakeChat())
    msgs = b.messages_for(req())
    assert [type(m) for m in msgs] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert msgs[2].content == "Step 1."
    assert "next step" in str(msgs[3].content)
    inline = LangChainChatBackend(SeededFakeChat(), prefix_role="human").messages_for(req())
    assert [type(m) for m in inline] == [SystemMessage, HumanMessage, HumanMessage]
    assert "Step 1." in str(inline[-1].content) and "next step" in str(inline[-1].content)
    bare = b.messages_for(req(messages=(), prompt="Q: 2+3?\nStep 1.", assistant_prefix="Step 1."))
    assert bare[0].content == "Q: 2+3?\n" and bare[1].content == "Step 1."
    first = b.messages_for(req(assistant_prefix=""))
    assert [type(m) for m in first] == [SystemMessage, HumanMessage]


async def test_seed_modes() -> None:
    auto = LangChainChatBackend(SeededFakeChat())
    assert auto.seed_mode == "field" and auto.capabilities.seeded
    assert auto.capabilities.logprobs and auto.honours_max_tokens
    bind = LangChainChatBackend(SeededFakeChat(), seed_mode="bind")
    a = await bind.generate(req(seeds=(5,), max_tokens=12))
    b = await bind.generate(req(seeds=(5,), max_tokens=12))
    c = await auto.generate(req(seeds=(5,), max_tokens=12))
    assert a[0].text == b[0].text == c[0].text
    unseeded = LangChainChatBackend(FakeListChatModel(responses=["x"]))
    assert unseeded.seed_mode == "none" and not unseeded.capabilities.seeded
    assert not unseeded.honours_max_tokens and not unseeded.capabilities.logprobs
    with pytest.raises(ConfigError):
        LangChainChatBackend(FakeListChatModel(responses=["x"]), seed_mode="field")
    with pytest.raises(ConfigError):
        LangChainChatBackend("not a model")  # type: ignore[arg-type]


async def test_options_reach_a_copy_of_the_model() -> None:
    model = SeededFakeChat()
    b = LangChainChatBackend(model)
    [c] = await b.generate(req(max_tokens=3, temperature=0.0))
    assert c.finish_reason == "length" and c.completion_tokens == 3
    assert model.max_tokens is None and model.temperature == 0.7  # the original is untouched


async def test_top_logprobs_from_response_metadata() -> None:
    b = LangChainChatBackend(SeededFakeChat())
    r = make_request(**{**req().__dict__, "max_tokens": 2, "top_logprobs": 2})
    [c] = await b.generate(r)
    assert len(c.token_logprobs) == 2
    tops = completion_top_logprobs(c)
    assert len(tops) == 2 and all(len(p) == 2 for p in tops)


async def test_generic_fake_chat_model_and_client_side_stop() -> None:
    model = GenericFakeChatModel(messages=itertools.cycle(["Add them.\n\nThen stop.", "Next."]))
    b = LangChainChatBackend(model)
    out = await b.generate(req(seeds=(1, 2), stop=("\n\n",)))
    assert out[0].text == "Add them." and out[0].stop_matched == "\n\n"
    assert out[0].finish_reason == "stop"
    assert out[1].text == "Next." and out[1].stop_matched is None
    assert out[0].prompt_tokens == 0  # no usage metadata: unknown, not invented


async def test_provider_errors_are_one_line_and_classified() -> None:
    b = LangChainChatBackend(SeededFakeChat(fail_with="bad request:\nmodel not found"))
    with pytest.raises(BackendRequestError) as info:
        await b.generate(req())
    assert_one_line(info.value)
    assert "RuntimeError" in str(info.value)

    class APIConnectionError(Exception):
        pass

    class Down(SeededFakeChat):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            raise APIConnectionError("Connection error.")

    with pytest.raises(BackendUnavailableError) as info2:
        await LangChainChatBackend(Down()).generate(req())
    assert_one_line(info2.value)
