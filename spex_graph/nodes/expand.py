"""`expand`: generate the children the algorithm asked for, through the dispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from spex_graph.algorithms.base import ExpandOrder, child_keys
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


async def expand_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Submit one request per new child (joining speculative work), wait, add the children."""
    ctx = context_of(runtime)
    tree = load_tree(state)
    problem = load_problem(state)
    session = ctx.dispatcher.session(state["query_id"])
    speculator_for(ctx, state)  # pipelines scoring as children finish
    orders = [ExpandOrder(**o) for o in state.get("orders", [])]

    jobs: list[tuple[ExpandOrder, ExpansionKey]] = child_keys(tree, orders)
    tasks = []
    for order, key in jobs:
        steps = tree.steps(order.node_id)
        build = generation_builder(ctx, problem, steps, key, until_end=order.until_end)
        tasks.append(session.expand(key, build))

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
            "new_nodes": [
                {"id": i, "parent": tree.node(i).parent, "text": tree.node(i).text} for i in new_ids
            ],
            "tree_size": len(tree),
        }
    )
    return {"tree": dump(tree), "new_ids": new_ids, "orders": []}
