"""Apply adaptive early termination and trailing-branch pruning to a live search."""

from __future__ import annotations

from spex_graph.algorithms.base import SearchState
from spex_graph.context import SearchContext
from spex_graph.policies.early_stop import (
    StopDecision,
    paper_classes,
    prune_trailing,
    safe_stop,
    should_stop,
)
from spex_graph.policies.leaf_bound import max_leaf_weight, max_new_leaves
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import Aggregation, TreeTally


def _tree_tally(ctx: SearchContext, query_id: str, tree: SearchTree) -> TreeTally:
    """The query's answer classes, kept on its session between checks (so a check
    costs O(new leaves)) and brought up to date with `tree`."""
    session = ctx.dispatcher.session(query_id)
    tracker = session.early_stop
    if not isinstance(tracker, TreeTally):
        aggregation: Aggregation = ctx.algorithm.aggregation
        tracker = TreeTally(ctx.task.equivalent, ("min", aggregation))
        session.early_stop = tracker
    tracker.update(tree)
    return tracker


def _paper_decision(
    ctx: SearchContext, tree: SearchTree, search: SearchState, tracker: TreeTally
) -> tuple[StopDecision, bool]:
    """The paper rule's verdict, and whether its gate is open (BFS: more than width / 4
    answered leaves; MCTS: more than rollouts / 2 rollouts done, as in the artifact)."""
    spex = ctx.spex
    rollouts = ctx.algorithm.traits.rollouts  # MCTS-style searches have a rollout budget
    if rollouts is not None:
        remaining = max(0, rollouts - search.rollouts_done)
        progress, gate, min_leading = search.rollouts_done, rollouts / 2, 3
        alpha, threshold = spex.et_alpha_mcts, spex.et_threshold_mcts
    else:
        width = ctx.algorithm.width
        remaining = max(0, width - len(tree.leaves()))
        progress, gate, min_leading = len(tracker.tally), width / 4, 2
        alpha, threshold = spex.et_alpha_bfs, spex.et_threshold_bfs
    decision = should_stop(
        paper_classes(tracker.tally),
        remaining=remaining,
        finished=progress,
        min_finished=gate,
        alpha=alpha,
        threshold=threshold,
        min_leading=min_leading,
    )
    return decision, progress > gate


def apply_early_termination(
    ctx: SearchContext, tree: SearchTree, search: SearchState, query_id: str
) -> SearchState:
    """After an observe: report how settled the answer is to the budget, stop the search
    (state.done, stop_reason "early-stop") when the configured rule says it is settled,
    else prune trailing branches (when `prune_margin` is set, with or without a rule).

    Marks pruned nodes in `tree`; returns the (possibly) updated state.
    """
    spex = ctx.spex
    budget = ctx.dispatcher.budget
    rule = spex.et_rule
    if rule is None and budget is None and spex.prune_margin is None:
        return search
    tracker = _tree_tally(ctx, query_id, tree)
    paper, gate_open = _paper_decision(ctx, tree, search, tracker)
    if budget is not None:
        unsettled = 1.0
        if paper.w1 > 0 and gate_open:
            unsettled = min(1.0, max(0.0, paper.w2 / paper.w1))
        budget.report(query_id, unsettled=unsettled)
    if search.done:
        return search
    decision = paper
    if rule == "safe":
        aggregation: Aggregation = ctx.algorithm.aggregation
        decision = safe_stop(
            tracker.tally,
            method=ctx.algorithm.vote,
            aggregation=aggregation,
            new_leaves=max_new_leaves(ctx.algorithm, tree, search),
            rewards_in_unit_range=tracker.rewards_in_unit_range,
            w_max=max_leaf_weight(ctx.algorithm, tree, search, aggregation),
        )
    if rule is not None and decision.stop:
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
