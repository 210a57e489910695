"""`aggregate`: vote over the finished leaves, close the query, build the result."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from spex_graph.nodes.common import context_of, dump, load_problem, load_search, load_tree
from spex_graph.result import SearchResult
from spex_graph.state import SearchGraphState
from spex_graph.voting import vote


async def aggregate_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Pick the answer by the algorithm's vote, cancel leftover work, report the result."""
    ctx = context_of(runtime)
    tree = load_tree(state)
    search = load_search(state)
    problem = load_problem(state)
    algorithm = ctx.algorithm
    candidates = algorithm.candidates(tree, search)
    size_before = len(tree)
    if ctx.spex.speculation and not ctx.spex.exact:
        from spex_graph.policies.speculation import attach_speculative_leaves

        session = ctx.dispatcher.session(state["query_id"])
        candidates = [*candidates, *attach_speculative_leaves(ctx, tree, session)]
    outcome = vote(
        tree,
        candidates,
        ctx.task.equivalent,
        method=algorithm.vote,
        aggregation=algorithm.aggregation,
    )
    closed = await ctx.dispatcher.close(state["query_id"])
    stats = closed.stats() if closed is not None else None
    correct = ctx.task.is_correct(problem, outcome.answer) if problem.gold else None
    result = SearchResult(
        query_id=state["query_id"],
        question=problem.question,
        answer=outcome.answer,
        correct=correct,
        chosen_path=tree.steps(outcome.node_id) if outcome.node_id is not None else [],
        chosen_node=outcome.node_id,
        votes=outcome.weights,
        stop_reason=search.stop_reason or "finished",
        algorithm=algorithm.name,
        width=algorithm.width,
        nodes=len(tree),
        tokens_primary=stats.primary if stats else 0,
        tokens_speculative_used=stats.speculative_used if stats else 0,
        tokens_speculative_wasted=stats.speculative_wasted if stats else 0,
        speculation_hit_rate=stats.hit_rate if stats else 0.0,
        cancelled_requests=stats.cancelled_requests if stats else 0,
        latency_s=ctx.dispatcher.clock() - state.get("started_at", ctx.dispatcher.clock()),
    )
    runtime.stream_writer(
        {"event": "answer", "query_id": state["query_id"], "answer": result.answer}
    )
    update: dict[str, Any] = {"result": result.model_dump(mode="json")}
    if len(tree) > size_before:  # non-exact mode attached speculative nodes
        update["tree"] = dump(tree)
    return update
