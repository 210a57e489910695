"""Build the search as a LangGraph StateGraph.

    START -> start -> select --(orders)--> expand -> evaluate -> select
                         \\--(no orders)--> aggregate -> END

`expand` and `evaluate` only submit work to the dispatcher (in the runtime
context) and collect it; the requests themselves are asyncio tasks owned by
the dispatcher, so work can run across superstep boundaries.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import DEFAULT_RECURSION_LIMIT
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from spex_graph.context import SearchContext
from spex_graph.nodes import aggregate_node, evaluate_node, expand_node, select_node, start_node
from spex_graph.nodes.common import context_of
from spex_graph.state import SearchGraphState, SearchInput, SearchOutput

RECURSION_LIMIT = 100_000
"""Supersteps allowed per query (three per search round; MCTS runs many rounds)."""


def step_limit_config(config: RunnableConfig | None) -> RunnableConfig:
    """`config` with the search's own step limit unless the caller chose another.

    LangChain fills `recursion_limit=25` into every config it passes on (`batch`,
    `abatch`, chains), which would stop a search after 8 rounds, and LangGraph
    passes its own default (a marked int) to subgraphs. So a missing limit,
    LangGraph's marked default and exactly LangChain's 25 are read as "not set"
    and replaced by RECURSION_LIMIT; any other value is the caller's choice and
    is honoured (an explicit 25 cannot be told apart from LangChain's default).
    """
    merged: RunnableConfig = dict(config or {})  # type: ignore[assignment]
    limit = merged.get("recursion_limit")
    if (
        limit is None
        or limit == DEFAULT_RECURSION_LIMIT
        or type(limit).__name__ == "_DefaultRecursionLimit"
    ):
        merged["recursion_limit"] = RECURSION_LIMIT
    return merged


class SearchGraph(CompiledStateGraph[Any, Any, Any, Any]):
    """The compiled search graph; applies `step_limit_config` on every entry point.

    `invoke`, `ainvoke`, `batch`, the event APIs and subgraph use all go through
    `stream`/`astream`, so overriding those two covers every way a run starts.
    """

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """`CompiledStateGraph.stream` under the search's step limit."""
        return super().stream(input, step_limit_config(config), **kwargs)

    def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """`CompiledStateGraph.astream` under the search's step limit."""
        return super().astream(input, step_limit_config(config), **kwargs)


Node = Callable[[SearchGraphState, Runtime[Any]], Awaitable[dict[str, Any]]]


def closes_query_on_failure(node: Node) -> Node:
    """Wrap a node so that a query it fails or that is cancelled inside it is closed.

    `aggregate` closes a query that ends normally; this covers the rest (a raising
    reward, a timeout, `asyncio.wait_for`, a closed stream) for every caller of the
    graph, not only `SpexReasoner`: the session's requests are aborted on the
    engine and its budget registration and claims are released. LangGraph's own
    control-flow exceptions (interrupts) pass through untouched.
    """

    @functools.wraps(node)
    async def run(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
        try:
            return await node(state, runtime)
        except GraphBubbleUp:
            raise
        except BaseException:
            query_id = state.get("query_id")
            if query_id:
                await asyncio.shield(context_of(runtime).dispatcher.close(query_id))
            raise

    return run


def _after_select(state: SearchGraphState) -> str:
    return "expand" if state.get("orders") else "aggregate"


def build_search_graph(
    *,
    checkpointer: Any = None,
    name: str = "spex-search",
    context_schema: type[Any] = SearchContext,
) -> SearchGraph:
    """Compile the search graph.

    Run it with a `SearchContext` in the runtime context::

        graph = build_search_graph()
        ctx = SearchContext.create(policy, reward, task="gsm8k", algorithm="rebase")
        out = await graph.ainvoke({"question": "..."}, context=ctx)
        out["result"]["answer"]

    Args:
        checkpointer: a LangGraph checkpointer (in-memory or SQLite saver) to make
            runs resumable; pass `config={"configurable": {"thread_id": ...}}` then.
        name: the graph's name (shown in LangGraph Studio).
        context_schema: the type runs pass as context: `SearchContext` (live objects), or
            `spex_graph.settings.ContextSettings` for servers that can only pass JSON
            (LangGraph Studio and Platform build it from the assistant's context).
    """
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        SearchGraphState,
        context_schema=context_schema,
        input_schema=SearchInput,
        output_schema=SearchOutput,
    )
    nodes = {
        "start": start_node,
        "select": select_node,
        "expand": expand_node,
        "evaluate": evaluate_node,
        "aggregate": aggregate_node,
    }
    for name_, node in nodes.items():
        builder.add_node(name_, closes_query_on_failure(node))  # type: ignore[call-overload]
    builder.add_edge(START, "start")
    builder.add_edge("start", "select")
    builder.add_conditional_edges("select", _after_select, ["expand", "aggregate"])
    builder.add_edge("expand", "evaluate")
    builder.add_edge("evaluate", "select")
    builder.add_edge("aggregate", END)
    graph = builder.compile(checkpointer=checkpointer, name=name)
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    return SearchGraph(**attrs)
