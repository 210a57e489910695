"""Pick the final answer from finished leaves: majority or reward-weighted vote."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from spex_graph.tree import SearchTree

Aggregation = Literal["min", "last", "prod", "mean"]
VoteMethod = Literal["majority", "weighted", "best"]


def aggregate_rewards(rewards: Sequence[float], how: Aggregation) -> float:
    """Combine a path's step rewards into one score (empty path scores 0.0)."""
    if not rewards:
        return 0.0
    if how == "min":
        return min(rewards)
    if how == "last":
        return rewards[-1]
    if how == "prod":
        return math.prod(rewards)
    if how == "mean":
        return sum(rewards) / len(rewards)
    raise ValueError(f"unknown reward aggregation {how!r}; use min, last, prod or mean")


@dataclass(frozen=True)
class VoteResult:
    """Outcome of a vote.

    Attributes:
        answer: the winning answer (None when no leaf had an answer).
        node_id: the best-scored leaf that carries the winning answer.
        weights: total weight per answer class, keyed by the class's answer.
        counts: leaves per answer class.
    """

    answer: str | None
    node_id: int | None
    weights: dict[str, float]
    counts: dict[str, int]


def vote(
    tree: SearchTree,
    leaf_ids: Sequence[int],
    equivalent: Callable[[str, str], bool],
    method: VoteMethod = "weighted",
    aggregation: Aggregation = "min",
) -> VoteResult:
    """Group leaves by equivalent answer and pick a class.

    `majority` counts leaves, `weighted` sums aggregated path rewards, `best`
    takes the single best-scored leaf. Ties break towards the class seen first
    (lowest leaf id), which keeps the result deterministic.
    """
    classes: list[str] = []
    weights: dict[str, float] = {}
    counts: dict[str, int] = {}
    best_leaf: dict[str, tuple[float, int]] = {}
    for leaf_id in sorted(leaf_ids):
        answer = tree.node(leaf_id).answer
        if answer is None:
            continue
        key = next((c for c in classes if c == answer or equivalent(c, answer)), None)
        if key is None:
            key = answer
            classes.append(key)
            weights[key], counts[key] = 0.0, 0
        score = aggregate_rewards(tree.path_rewards(leaf_id), aggregation)
        weights[key] += 1.0 if method == "majority" else score
        counts[key] += 1
        if key not in best_leaf or score > best_leaf[key][0]:
            best_leaf[key] = (score, leaf_id)
    if not classes:
        return VoteResult(None, None, {}, {})
    if method == "best":
        winner = max(classes, key=lambda c: (best_leaf[c][0], -classes.index(c)))
    else:
        winner = max(classes, key=lambda c: (weights[c], -classes.index(c)))
    return VoteResult(winner, best_leaf[winner][1], weights, counts)
