"""Build the search as a LangGraph StateGraph.

    START -> start -> select --(orders)--> expand -> evaluate -> select
                         \\--(no orders)--> aggregate -> END

`expand` and `evaluate` only submit work to the dispatcher (in the runtime
context) and collect it; the requests themselves are asyncio tasks owned by
the dispatcher, so work can run across superstep boundaries.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from spex_graph.context import SearchContext
from spex_graph.nodes import aggregate_node, evaluate_node, expand_node, select_node, start_node
from spex_graph.state import SearchGraphState, SearchInput, SearchOutput

RECURSION_LIMIT = 100_000
"""Supersteps allowed per query (three per search round; MCTS runs many rounds)."""


def _after_select(state: SearchGraphState) -> str:
    return "expand" if state.get("orders") else "aggregate"


def build_search_graph(
    *,
    checkpointer: Any = None,
    name: str = "spex-search",
    context_schema: type[Any] = SearchContext,
) -> CompiledStateGraph[Any, Any, Any, Any]:
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
    builder.add_node("start", start_node)
    builder.add_node("select", select_node)
    builder.add_node("expand", expand_node)
    builder.add_node("evaluate", evaluate_node)
    builder.add_node("aggregate", aggregate_node)
    builder.add_edge(START, "start")
    builder.add_edge("start", "select")
    builder.add_conditional_edges("select", _after_select, ["expand", "aggregate"])
    builder.add_edge("expand", "evaluate")
    builder.add_edge("evaluate", "select")
    builder.add_edge("aggregate", END)
    graph = builder.compile(checkpointer=checkpointer, name=name)
    return graph.with_config(recursion_limit=RECURSION_LIMIT)
