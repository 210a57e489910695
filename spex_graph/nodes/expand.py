"""`expand`: generate the children the algorithm asked for, through the dispatcher."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from langgraph.runtime import Runtime

from spex_graph.algorithms.base import ExpandOrder, child_keys
from spex_graph.backends.base import Completion
from spex_graph.context import SearchContext
from spex_graph.nodes.common import (
    context_of,
    dump,
    load_problem,
    load_tree,
    speculator_for,
)
from spex_graph.requests import generation_builder, score_request
from spex_graph.runtime.dispatcher import ExpansionKey, QuerySession
from spex_graph.state import SearchGraphState
from spex_graph.tasks.base import Problem
from spex_graph.terminal import classify_child
from spex_graph.tree import SearchNode


def _score_when_ready(
    ctx: SearchContext,
    session: QuerySession,
    problem: Problem,
    steps: list[str],
    key: ExpansionKey,
    task: asyncio.Future[Completion],
) -> None:
    """Submit the child's scoring as soon as its text is ready (the evaluate node joins it)."""
    if task.cancelled() or task.exception() is not None:
        return
    if session.has_score(key):
        return
    completion = task.result()
    request = score_request(
        ctx,
        problem,
        [*steps, completion.text.strip()],
        f"{session.query_id}-r{'/'.join(map(str, key))}",
        step_logprobs=completion.token_logprobs,
        finish_reason=completion.finish_reason,
    )
    session.score(key, request)


async def expand_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Submit one request per new child (joining speculative work), wait, add the children."""
    ctx = context_of(runtime)
    tree = load_tree(state)
    problem = load_problem(state)
    session = ctx.dispatcher.session(state["query_id"])
    # the speculator pipelines scoring as children finish; without one, do it here
    pipeline = speculator_for(ctx, state) is None and ctx.spex.pipeline_scoring
    orders = [ExpandOrder(**o) for o in state.get("orders", [])]

    jobs: list[tuple[ExpandOrder, ExpansionKey]] = child_keys(tree, orders)
    tasks = []
    for order, key in jobs:
        steps = tree.steps(order.node_id)
        build = generation_builder(ctx, problem, steps, key, until_end=order.until_end)
        task = session.expand(key, build)
        if pipeline:
            task.add_done_callback(partial(_score_when_ready, ctx, session, problem, steps, key))
        tasks.append(task)

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
            token_logprobs=list(completion.token_logprobs),
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
