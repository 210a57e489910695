"""`expand`: generate the children the algorithm asked for, through the dispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from spex_graph.algorithms.base import ExpandOrder
from spex_graph.nodes.common import (
    context_of,
    dump,
    load_problem,
    load_tree,
    speculator_for,
)
from spex_graph.requests import generation_builder
from spex_graph.runtime.dispatcher import ExpansionKey
from spex_graph.state import SearchGraphState
from spex_graph.terminal import classify_child
from spex_graph.tree import SearchNode


async def expand_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Submit one request per new child (joining speculative work), wait, add the children."""
    ctx = context_of(runtime)
    tree = load_tree(state)
    problem = load_problem(state)
    session = ctx.dispatcher.session(state["query_id"])
    speculator_for(ctx, state)  # pipelines scoring as children finish
    orders = [ExpandOrder(**o) for o in state.get("orders", [])]

    jobs: list[tuple[ExpandOrder, ExpansionKey]] = []
    tasks = []
    next_index: dict[int, int] = {}
    for order in orders:
        parent_key = tree.path_key(order.node_id)
        steps = tree.steps(order.node_id)
        first = next_index.get(order.node_id, len(tree.children_of.get(order.node_id, [])))
        for j in range(order.n):
            key = (*parent_key, first + j)
            build = generation_builder(ctx, problem, steps, key, until_end=order.until_end)
            tasks.append(session.expand(key, build))
            jobs.append((order, key))
        next_index[order.node_id] = first + order.n

    completions = await asyncio.gather(*tasks)
    now = ctx.dispatcher.clock()
    new_ids: list[int] = []
    for (order, key), completion in zip(jobs, completions, strict=True):
        speculative = session.was_speculative(key)
        session.adopt(key)
        child = tree.add_child(
            order.node_id,
            text=completion.text.strip(),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cached_tokens=completion.cached_tokens,
            finish_reason=completion.finish_reason,
            speculative=speculative,
            created_at=now,
        )
        classify_child(ctx, tree, child, until_end=order.until_end, completion=completion)
        new_ids.append(child.id)

    runtime.stream_writer(
        {
            "event": "expand",
            "query_id": state["query_id"],
            "new_nodes": [_event_node(tree.node(i)) for i in new_ids],
            "tree_size": len(tree),
        }
    )
    return {"tree": dump(tree), "new_ids": new_ids, "orders": []}


def _event_node(node: SearchNode) -> dict[str, Any]:
    """A new node as the expand event shows it (live progress, UIs)."""
    return {
        "id": node.id,
        "parent": node.parent,
        "text": node.text,
        "depth": node.depth,
        "tokens": node.completion_tokens,
        "answer": node.answer,
    }
