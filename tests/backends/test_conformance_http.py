"""The backend conformance suite against local fake servers and fake LangChain models.

Targets:
- sglang: SGLangBackend on a fake "new" SGLang (sampling_seed, deterministic inference).
- sglang-old: SGLangBackend (api_version="auto") on a fake 0.5.2-style SGLang (no seeds).
- openai-completions / openai-chat: OpenAICompatBackend on a fake vLLM-style server.
- langchain-seeded: LangChainChatBackend on a seeded fake provider model.
- langchain-fakelist: LangChainChatBackend on langchain_core's FakeListChatModel
  (no seeds, no max_tokens, no token counts: those checks are skipped by flag).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backends.conformance import CHECKS, Check, Target, run_check
from backends.fake_chat_model import SeededFakeChat
from backends.fake_http import closed_port_url
from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from spex_graph.backends.langchain_chat import LangChainChatBackend
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SGLangBackend

TARGETS = [
    "sglang",
    "sglang-old",
    "openai-completions",
    "openai-chat",
    "langchain-seeded",
    "langchain-fakelist",
]


@pytest.fixture(scope="module")
def sglang_new() -> Iterator[FakeSGLangServer]:
    with FakeSGLangServer(version="new") as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def sglang_old() -> Iterator[FakeSGLangServer]:
    with FakeSGLangServer(version="old") as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


def _children_in(aborted: list[str], request_id: str, n: int = 2) -> bool:
    return all(f"{request_id}-{i:04d}" in aborted for i in range(n))


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    if name in ("sglang", "sglang-old"):
        srv: FakeSGLangServer = request.getfixturevalue(
            "sglang_new" if name == "sglang" else "sglang_old"
        )
        return Target(
            name,
            make=lambda: SGLangBackend(srv.url, timeout=10),
            make_unreachable=lambda: SGLangBackend(closed_port_url(), timeout=10),
            engine_aborted=lambda rid: _children_in(srv.aborted, rid),
        )
    if name.startswith("openai"):
        osrv: FakeOpenAIServer = request.getfixturevalue("openai_server")
        chat = name == "openai-chat"
        return Target(
            name,
            make=lambda: OpenAICompatBackend(osrv.url, "fake-model", chat=chat, timeout=10),
            make_unreachable=lambda: OpenAICompatBackend(
                closed_port_url(), "fake-model", chat=chat, timeout=10
            ),
            engine_aborted=lambda rid: _children_in(osrv.aborted, rid),
        )
    if name == "langchain-seeded":
        return Target(
            name,
            make=lambda: LangChainChatBackend(SeededFakeChat(), max_concurrency=16),
            reports_stop_matched=False,  # chat APIs do not say which stop string matched
        )
    fakelist = FakeListChatModel(responses=["Step 1: 2 + 3 = 5.\nSo the answer is 5."], sleep=0.2)
    return Target(
        name,
        make=lambda: LangChainChatBackend(fakelist, max_concurrency=16),
        honours_max_tokens=False,  # FakeListChatModel has no max-tokens field
        reports_token_counts=False,  # ... and no usage metadata
        deterministic=True,  # it cycles one fixed response
        reports_stop_matched=True,  # it ignores stop: the client cuts, so it knows
        cancel_after_s=0.08,
    )


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_conformance(target: Target, check: Check) -> None:
    await run_check(target, check)
