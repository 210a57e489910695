"""Helpers shared by the graph nodes: context lookup and state (de)serialisation."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from spex_graph.algorithms.base import SearchState
from spex_graph.context import SearchContext
from spex_graph.runtime.dispatcher import QuerySpeculator
from spex_graph.state import SearchGraphState
from spex_graph.tasks.base import Problem
from spex_graph.tree import SearchTree


def context_of(runtime: Runtime[Any]) -> SearchContext:
    """The SearchContext of this run.

    A run given settings by name instead (LangGraph Studio, `langgraph dev`, LangGraph
    Platform: a `ContextSettings`, a dict of its fields, or nothing) gets the shared
    context those settings, the ``SPEX_*`` environment and the defaults describe.
    """
    ctx = runtime.context
    if isinstance(ctx, SearchContext):
        return ctx
    from spex_graph.settings import context_from_settings

    return context_from_settings(ctx)


def load_tree(state: SearchGraphState) -> SearchTree:
    """The tree from state."""
    return SearchTree.model_validate(state["tree"])


def load_search(state: SearchGraphState) -> SearchState:
    """The algorithm state from state."""
    return SearchState.model_validate(state["search"])


def load_problem(state: SearchGraphState) -> Problem:
    """The problem record from state."""
    data = state["problem"]
    return Problem(
        id=str(data["id"]),
        task=str(data["task"]),
        question=str(data["question"]),
        gold=str(data.get("gold", "")),
        meta=dict(data.get("meta") or {}),
    )


def dump(model: Any) -> dict[str, Any]:
    """JSON-mode dump of a pydantic model (checkpoint-safe plain data)."""
    return model.model_dump(mode="json")  # type: ignore[no-any-return]


def speculator_for(ctx: SearchContext, state: SearchGraphState) -> QuerySpeculator | None:
    """The query's Speculator (created on first use), or None when speculation is off."""
    if not ctx.spex.speculation:
        return None
    session = ctx.dispatcher.session(state["query_id"])
    if session.speculator is None:
        if ctx.speculator_factory is not None:
            ctx.speculator_factory(ctx, session, load_problem(state))
        else:
            from spex_graph.policies.speculation import Speculator

            Speculator(ctx, session, load_problem(state), ctx.spex)
    return session.speculator
