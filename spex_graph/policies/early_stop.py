"""Adaptive early termination: stop a query once its answer is settled.

Finished leaves are grouped by equivalent answer and weighted by their
minimum step reward. With W1, W2 the two heaviest classes' total weights and
n2 the second class's size, the query stops when

    W1 - W2 > alpha * remaining_width * (W2 / n2)

(the leading class could not be overtaken even if every remaining leaf joined
the runner-up with its average weight) and the leading class's median leaf
weight exceeds a threshold. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spex_graph.tree import NodeStatus, SearchTree


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop, and the numbers behind it (for traces and tests)."""

    stop: bool
    reason: str
    w1: float = 0.0
    w2: float = 0.0
    n2: int = 0
    median_leading: float = 0.0
    remaining: int = 0


def answer_classes(
    tree: SearchTree, equivalent: Callable[[str, str], bool]
) -> list[tuple[str, list[float]]]:
    """Finished leaves with answers grouped by equivalent answer: (answer, leaf weights),
    heaviest class first (ties: first seen). A leaf's weight is its min step reward."""
    classes: list[tuple[str, list[float]]] = []
    for leaf in tree.leaves():
        if leaf.answer is None:
            continue
        weight = min(tree.path_rewards(leaf.id), default=0.0)
        for answer, weights in classes:
            if answer == leaf.answer or equivalent(answer, leaf.answer):
                weights.append(weight)
                break
        else:
            classes.append((leaf.answer, [weight]))
    order = sorted(range(len(classes)), key=lambda i: (-sum(classes[i][1]), i))
    return [classes[i] for i in order]


def should_stop(
    classes: Sequence[tuple[str, list[float]]],
    *,
    remaining: int,
    finished: int,
    min_finished: float,
    alpha: float,
    threshold: float,
) -> StopDecision:
    """The early-termination rule (see the module docstring).

    Args:
        classes: answer classes, heaviest first (from `answer_classes`).
        remaining: width (BFS) or rollouts (MCTS) the search would still spend.
        finished: finished leaves so far.
        min_finished: check only once `finished > min_finished`
            (BFS: width / 4; MCTS: rollouts / 2).
        alpha, threshold: the rule's constants.
    """
    if finished <= min_finished or not classes:
        return StopDecision(False, "too few leaves", remaining=remaining)
    w1 = sum(classes[0][1])
    w2 = sum(classes[1][1]) if len(classes) > 1 else 0.0
    n2 = len(classes[1][1]) if len(classes) > 1 else 0
    runner_up_mean = w2 / n2 if n2 else 0.0
    median = statistics.median(classes[0][1])
    settled = w1 - w2 > alpha * remaining * runner_up_mean
    confident = median > threshold
    return StopDecision(
        settled and confident,
        "settled" if settled and confident else ("low confidence" if settled else "contested"),
        w1,
        w2,
        n2,
        median,
        remaining,
    )


def prune_trailing(
    tree: SearchTree, frontier: Sequence[int], margin: float, min_depth: int
) -> list[int]:
    """Live frontier nodes whose min path reward trails the best by more than `margin`
    (only at depth >= min_depth). Returns the ids to prune; marks nothing."""
    scored = {i: min(tree.path_rewards(i), default=0.0) for i in frontier}
    if not scored:
        return []
    best = max(scored.values())
    return [
        i
        for i, s in scored.items()
        if best - s > margin
        and tree.node(i).depth >= min_depth
        and tree.node(i).status != NodeStatus.TERMINAL
    ]
