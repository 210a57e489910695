"""`evaluate`: score the new children, then let the algorithm observe them."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from spex_graph.nodes.common import context_of, dump, load_problem, load_search, load_tree
from spex_graph.policies.termination import apply_early_termination
from spex_graph.requests import score_request
from spex_graph.state import SearchGraphState


async def evaluate_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Score every new child (concurrently), record rewards, update the algorithm state."""
    ctx = context_of(runtime)
    tree = load_tree(state)
    search = load_search(state)
    problem = load_problem(state)
    session = ctx.dispatcher.session(state["query_id"])
    new_ids = list(state.get("new_ids", []))

    tasks = []
    for node_id in new_ids:
        key = tree.path_key(node_id)
        node = tree.node(node_id)
        # read from the node, not the live completion: a resumed run has only the checkpoint
        request = score_request(
            ctx,
            problem,
            tree.steps(node_id),
            f"{state['query_id']}-r{'/'.join(map(str, key))}",
            step_logprobs=node.token_logprobs,
            finish_reason=node.finish_reason,
        )
        tasks.append(session.score(key, request))
    rewards = await asyncio.gather(*tasks)

    now = ctx.dispatcher.clock()
    for node_id, reward in zip(new_ids, rewards, strict=True):
        node = tree.node(node_id)
        node.reward = float(reward)
        node.scored_at = now
    search = ctx.algorithm.observe(tree, search, new_ids)
    search = apply_early_termination(ctx, tree, search, state["query_id"])
    runtime.stream_writer(
        {
            "event": "evaluate",
            "query_id": state["query_id"],
            "rewards": {i: tree.node(i).reward for i in new_ids},
            "finished_leaves": len(tree.leaves()),
        }
    )
    return {"tree": dump(tree), "search": dump(search), "new_ids": []}
