"""Every entry point runs a deep search to its end (issue #11, item 1).

LangChain passes `recursion_limit=25` to everything it calls (`batch`, chains,
a parent graph's subgraph), which stopped searches after 8 rounds. A deep
MCTS search at default settings (depth 10, hundreds of supersteps) must finish
through each of them; a limit the caller really chose is still honoured.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest
from helpers import AnswerReward
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph

from spex_graph import SearchResult, SpexReasoner
from spex_graph.backends.fake import ScriptedBackend, toy_math_script
from spex_graph.context import SearchContext
from spex_graph.graph import build_search_graph

DEPTH = 10


def deep_reasoner() -> SpexReasoner:
    """MCTS at its defaults on a script whose answers come after DEPTH steps."""
    backend = ScriptedBackend(script=toy_math_script(depth_to_answer=DEPTH))
    return SpexReasoner(
        backend, AnswerReward(), task="gsm8k", algorithm="mcts", max_depth=DEPTH + 2
    )


def check(result: Any) -> None:
    assert isinstance(result, SearchResult), result
    assert result.answer in ("42", "41")
    assert len(result.chosen_path) > DEPTH
    assert result.stop_reason != "recursion"


@pytest.fixture(scope="module")
def reasoner() -> Any:
    r = deep_reasoner()
    yield r
    r.close()


def test_invoke(reasoner: SpexReasoner) -> None:
    check(reasoner.invoke("q?"))


def test_batch(reasoner: SpexReasoner) -> None:
    for result in reasoner.batch(["q1?", "q2?"]):
        check(result)


def test_batch_with_configs(reasoner: SpexReasoner) -> None:
    results = reasoner.batch(["q1?", "q2?"], [{"tags": ["a"]}, {"tags": ["b"]}])
    for result in results:
        check(result)


async def test_abatch(reasoner: SpexReasoner) -> None:
    for result in await reasoner.abatch(["q1?", "q2?"]):
        check(result)


def test_stream(reasoner: SpexReasoner) -> None:
    items = list(reasoner.stream("q?"))
    check(items[-1])
    assert any(isinstance(i, dict) and i.get("event") == "expand" for i in items)


async def test_astream(reasoner: SpexReasoner) -> None:
    items = [i async for i in reasoner.astream("q?")]
    check(items[-1])


async def test_astream_events(reasoner: SpexReasoner) -> None:
    outputs = []
    async for event in reasoner.astream_events("q?", version="v2"):
        output = event["data"].get("chunk")
        if event["event"] == "on_chain_stream" and isinstance(output, SearchResult):
            outputs.append(output)
    assert len(outputs) == 1
    check(outputs[0])


def test_chain(reasoner: SpexReasoner) -> None:
    chain = PromptTemplate.from_template("Solve: {q}") | reasoner | RunnableLambda(lambda r: r)
    check(chain.invoke({"q": "2+2?"}))
    for result in chain.batch([{"q": "a?"}, {"q": "b?"}]):
        check(result)


async def test_chain_async(reasoner: SpexReasoner) -> None:
    chain = RunnableLambda(lambda q: q) | reasoner
    for result in await chain.abatch(["a?", "b?"]):
        check(result)


class Outer(TypedDict, total=False):
    question: str
    result: dict[str, Any]


def test_reasoner_as_a_node_of_a_parent_graph(reasoner: SpexReasoner) -> None:
    def search(state: Outer, config: RunnableConfig) -> dict[str, Any]:
        # the parent's config carries LangGraph's own recursion_limit (25)
        result = reasoner.invoke(state["question"], config)
        return {"result": result.model_dump()}

    parent = StateGraph(Outer)
    parent.add_node("search", search)
    parent.add_edge(START, "search")
    parent.add_edge("search", END)
    out = parent.compile().invoke({"question": "q?"})
    check(SearchResult.model_validate(out["result"]))


def test_search_graph_as_a_subgraph() -> None:
    backend = ScriptedBackend(script=toy_math_script(depth_to_answer=DEPTH))
    ctx = SearchContext.create(
        backend, AnswerReward(), task="gsm8k", algorithm="mcts", max_depth=DEPTH + 2
    )
    parent = StateGraph(Outer, context_schema=SearchContext)
    parent.add_node("search", build_search_graph())
    parent.add_edge(START, "search")
    parent.add_edge("search", END)
    out = asyncio.run(parent.compile().ainvoke({"question": "q?"}, context=ctx))
    check(SearchResult.model_validate(out["result"]))


def test_a_limit_the_caller_chose_is_honoured(reasoner: SpexReasoner) -> None:
    with pytest.raises(GraphRecursionError):
        reasoner.invoke("q?", {"recursion_limit": 12})
    with pytest.raises(GraphRecursionError):
        reasoner.batch(["q?"], {"recursion_limit": 30})
