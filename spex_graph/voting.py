"""Pick the final answer from finished leaves: majority or reward-weighted vote.

Leaves are grouped into answer classes by `AnswerTally`, which is incremental:
it keeps its classes between calls, so adding k new leaves costs k lookups
(plus one equivalence check per class for an answer string it has not seen
before), never a regrouping of every leaf. `vote` and early termination share
it; `TreeTally` keeps one up to date with a growing search tree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from spex_graph.tree import NodeStatus, SearchTree

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


@dataclass
class AnswerClass:
    """Leaves whose answers are equivalent, with their scores per aggregation.

    Attributes:
        answer: the class's key: the answer of its first (lowest-id) leaf.
        index: order of first appearance among the tally's classes (ties go to
            the lower index).
        leaf_ids: member leaves, in the order they were added.
        scores: per aggregation, each member's aggregated path reward.
        totals: per aggregation, the sum of `scores` (summed in `leaf_ids` order).
        best: per aggregation, (highest score, its leaf id); the first leaf wins ties.
    """

    answer: str
    index: int
    leaf_ids: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    best: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of member leaves."""
        return len(self.leaf_ids)

    def weight(self, method: VoteMethod, aggregation: Aggregation) -> float:
        """What the vote ranks this class by: leaves (majority), summed scores
        (weighted) or the single best score (best)."""
        if method == "majority":
            return float(self.count)
        if method == "best":
            return self.best[aggregation][0]
        return self.totals[aggregation]


class AnswerTally:
    """Answer classes of a growing set of leaves (see the module docstring).

    Leaves must be added in increasing id order for the classes to equal the
    ones `vote` forms over the same leaves at once (a leaf joins the first class,
    in order of appearance, whose key equals or is equivalent to its answer).
    """

    def __init__(
        self,
        equivalent: Callable[[str, str], bool],
        aggregations: Iterable[Aggregation] = ("min",),
    ) -> None:
        self.equivalent = equivalent
        self.aggregations: tuple[Aggregation, ...] = tuple(dict.fromkeys(aggregations))
        self.classes: list[AnswerClass] = []
        self._class_of: dict[str, int] = {}
        self.last_leaf = -1
        """Highest leaf id added so far."""

    def __len__(self) -> int:
        return sum(c.count for c in self.classes)

    def _class_for(self, answer: str) -> AnswerClass:
        index = self._class_of.get(answer)
        if index is None:
            index = next(
                (
                    c.index
                    for c in self.classes
                    if c.answer == answer or self.equivalent(c.answer, answer)
                ),
                len(self.classes),
            )
            if index == len(self.classes):
                self.classes.append(AnswerClass(answer, index))
            # the same string always lands in the same class: later classes come after it
            self._class_of[answer] = index
        return self.classes[index]

    def add(self, leaf_id: int, answer: str, rewards: Sequence[float]) -> AnswerClass:
        """Add a leaf with its answer and its path's step rewards; returns its class."""
        cls = self._class_for(answer)
        cls.leaf_ids.append(leaf_id)
        for how in self.aggregations:
            score = aggregate_rewards(rewards, how)
            cls.scores.setdefault(how, []).append(score)
            cls.totals[how] = cls.totals.get(how, 0.0) + score
            if how not in cls.best or score > cls.best[how][0]:
                cls.best[how] = (score, leaf_id)
        self.last_leaf = max(self.last_leaf, leaf_id)
        return cls

    def ranked(self, method: VoteMethod, aggregation: Aggregation) -> list[AnswerClass]:
        """Classes by the vote's ranking, winner first (equal weights: lower index)."""
        return sorted(self.classes, key=lambda c: (-c.weight(method, aggregation), c.index))


class TreeTally:
    """An `AnswerTally` over a search tree's answered TERMINAL leaves, kept current.

    `update(tree)` looks only at nodes added since the last call (a node gets its
    answer and TERMINAL status when it is created, and TERMINAL is final), so a
    check costs O(new nodes). A tree that does not extend the one seen before
    (shorter, or an out-of-order leaf) is re-tallied from scratch.

    Attributes:
        tally: the classes.
        scanned: nodes of the tree looked at so far (ids below this).
        rewards_in_unit_range: every scanned node's reward lies in [0, 1]
            (what early termination's safe bound assumes).
    """

    def __init__(
        self, equivalent: Callable[[str, str], bool], aggregations: Iterable[Aggregation]
    ) -> None:
        self._equivalent = equivalent
        self._aggregations = tuple(aggregations)
        self._reset()

    def _reset(self) -> None:
        self.tally = AnswerTally(self._equivalent, self._aggregations)
        self.scanned = 0
        self.rewards_in_unit_range = True

    def update(self, tree: SearchTree) -> AnswerTally:
        """Take in the tree's new nodes; returns the tally."""
        if len(tree) < self.scanned:
            self._reset()
        for node in tree.nodes[self.scanned :]:
            if node.id != 0 and not (node.reward is not None and 0.0 <= node.reward <= 1.0):
                self.rewards_in_unit_range = False
            if node.status == NodeStatus.TERMINAL and node.answer is not None:
                if node.id < self.tally.last_leaf:
                    self._reset()
                    return self.update(tree)
                self.tally.add(node.id, node.answer, tree.path_rewards(node.id))
        self.scanned = len(tree)
        return self.tally


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
    tally = AnswerTally(equivalent, (aggregation,))
    for leaf_id in sorted(leaf_ids):
        answer = tree.node(leaf_id).answer
        if answer is not None:
            tally.add(leaf_id, answer, tree.path_rewards(leaf_id))
    if not tally.classes:
        return VoteResult(None, None, {}, {})
    winner = tally.ranked(method, aggregation)[0]
    weigh: VoteMethod = "majority" if method == "majority" else "weighted"
    weights = {c.answer: c.weight(weigh, aggregation) for c in tally.classes}
    counts = {c.answer: c.count for c in tally.classes}
    return VoteResult(winner.answer, winner.best[aggregation][1], weights, counts)
