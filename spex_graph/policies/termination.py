"""Apply adaptive early termination and trailing-branch pruning to a live search."""

from __future__ import annotations

from spex_graph.algorithms.base import SearchState
from spex_graph.context import SearchContext
from spex_graph.policies.early_stop import answer_classes, prune_trailing, should_stop
from spex_graph.tree import NodeStatus, SearchTree


def _is_mcts(ctx: SearchContext) -> bool:
    return hasattr(ctx.algorithm, "rollouts")


def apply_early_termination(
    ctx: SearchContext, tree: SearchTree, search: SearchState, query_id: str
) -> SearchState:
    """After an observe: report how settled the answer is to the budget, prune trailing
    branches, and stop the search (state.done, stop_reason "early-stop") when settled.

    Marks pruned nodes in `tree`; returns the (possibly) updated state.
    """
    spex = ctx.spex
    budget = ctx.dispatcher.budget
    if not spex.early_termination and budget is None:
        return search
    classes = answer_classes(tree, ctx.task.equivalent)
    finished = sum(len(w) for _, w in classes)
    if _is_mcts(ctx):
        rollouts = int(getattr(ctx.algorithm, "rollouts", 1))
        remaining = max(0, rollouts - search.rollouts_done)
        min_finished, alpha, threshold = rollouts / 2, spex.et_alpha_mcts, spex.et_threshold_mcts
    else:
        width = ctx.algorithm.width
        remaining = max(0, width - len(tree.leaves()))
        min_finished, alpha, threshold = width / 4, spex.et_alpha_bfs, spex.et_threshold_bfs
    decision = should_stop(
        classes,
        remaining=remaining,
        finished=finished,
        min_finished=min_finished,
        alpha=alpha,
        threshold=threshold,
    )
    if budget is not None:
        unsettled = 1.0
        if decision.w1 > 0 and finished > min_finished:
            unsettled = min(1.0, max(0.0, decision.w2 / decision.w1))
        budget.report(query_id, unsettled=unsettled)
    if not spex.early_termination or search.done:
        return search
    if decision.stop:
        st = search.clone()
        st.done, st.stop_reason = True, "early-stop"
        return st
    if spex.prune_margin is not None and search.frontier:
        doomed = prune_trailing(tree, search.frontier, spex.prune_margin, spex.prune_min_depth)
        if doomed:
            st = search.clone()
            for node_id in doomed:
                tree.node(node_id).status = NodeStatus.PRUNED
                st.allocation.pop(node_id, None)
            st.frontier = [i for i in st.frontier if i not in doomed]
            return st
    return search
