"""Adaptive early termination: stop a query once its answer is settled.

Two rules, both pure functions (no I/O, no clock):

**paper** (`should_stop`, SPEX's heuristic). Finished leaves are grouped by
equivalent answer and weighted by their minimum step reward. With W1, W2 the
two heaviest classes' total weights and n2 the second class's size, the query
stops when

    W1 - W2 > alpha * remaining_width * (W2 / n2)

(the leading class could not be overtaken if every remaining leaf joined the
runner-up with the runner-up's *average* weight) and the leading class has at
least 2 leaves (MCTS: 3) whose median weight exceeds a threshold, as in the
SPEX artifact (PKU-SEC-Lab/SPEX bfs_async.py and dfs_async.py: `confident`
needs `len(max_scores) > 1`, resp. `> 2`). Later leaves can be heavier than
the runner-up's average, so this can change the answer. This query-level stop
is what the paper calls pruning "deep branches in skewed search trees": the
artifact prunes no single branch. `prune_trailing` is our per-branch variant.

**safe** (`safe_stop`). It ranks the classes exactly as the algorithm's final
vote does (its `vote` method and `aggregation`) and stops only when no leaf
the search could still produce can change the winner. With R an upper bound
on the voting leaves still to come (`leaf_bound.max_new_leaves`), every
reward in [0, 1], and w_max a cap on a future leaf's weight (1 for any
aggregation; for min and prod, the best path min / product among the nodes
the search can still grow, `leaf_bound.max_leaf_weight`, as a path's min or
product only falls as it grows; a majority vote counts each leaf as 1):

* weighted and majority voting stop when  W1 - W2 > R * w_max;
* "best" voting (the class of the single best leaf) stops when the leader's
  best leaf scores above w_max, or exactly w_max and the leader is the first
  class seen;
* any vote stops when R = 0.

Proof (weighted / majority). Let W1 be the leader's weight and W2 the largest
other class's. Voters never leave (TERMINAL is final) and their weights never
change (rewards are set once). Say a_j of the at most R future leaves join
class j (Σ a_j ≤ R), each adding at least 0 and at most w_max. At the end
the leader weighs F1 ≥ W1 and any other class

    F_j ≤ W_j + a_j w_max ≤ W2 + R w_max < W1 ≤ F1;

a class that does not exist yet ends with at most R w_max < W1 - W2 ≤ W1.
The inequality is strict, so tie-breaking never decides, and the leader's key
(its first leaf's answer) does not change: the full search returns the same
answer. (Its chosen *path* may differ: a later leaf of the same class may
score higher.)

Proof (best). No later leaf scores above w_max. If the leader's best is above
it, nothing reaches it; if equal, a later leaf can only tie, and ties go to
the class seen first, which is the leader (new classes come after it). ∎

Under exact speculation the tree at every check is the baseline's tree at the
same point (speculative work only enters the tree when the real search asks
for it), and R bounds what the *baseline* would still add, so exact mode plus
the safe rule gives the baseline's answer on every query.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import Aggregation, AnswerTally, VoteMethod

W_MAX = 1.0
"""Largest weight a leaf can carry when every reward lies in [0, 1]."""


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
    heaviest class first (ties: first seen). A leaf's weight is its min step reward.

    Regroups every leaf; a live search keeps a `voting.TreeTally` instead."""
    tally = AnswerTally(equivalent, ("min",))
    for leaf in tree.leaves():
        if leaf.answer is not None:
            tally.add(leaf.id, leaf.answer, tree.path_rewards(leaf.id))
    return paper_classes(tally)


def paper_classes(tally: AnswerTally) -> list[tuple[str, list[float]]]:
    """The paper rule's view of a tally (it must hold "min" scores): (answer, leaf
    weights), heaviest class first."""
    return [(c.answer, c.scores["min"]) for c in tally.ranked("weighted", "min")]


def should_stop(
    classes: Sequence[tuple[str, list[float]]],
    *,
    remaining: int,
    finished: int,
    min_finished: float,
    alpha: float,
    threshold: float,
    min_leading: int = 1,
) -> StopDecision:
    """The paper's early-termination rule (see the module docstring).

    Args:
        classes: answer classes, heaviest first (from `answer_classes`).
        remaining: width (BFS) or rollouts (MCTS) the search would still spend.
        finished: finished leaves so far.
        min_finished: check only once `finished > min_finished`
            (BFS: width / 4; MCTS: rollouts / 2).
        alpha, threshold: the rule's constants.
        min_leading: the leading class needs this many leaves to count as
            confident (the artifact: 2 for BFS, 3 for MCTS).
    """
    if finished <= min_finished or not classes:
        return StopDecision(False, "too few leaves", remaining=remaining)
    w1 = sum(classes[0][1])
    w2 = sum(classes[1][1]) if len(classes) > 1 else 0.0
    n2 = len(classes[1][1]) if len(classes) > 1 else 0
    runner_up_mean = w2 / n2 if n2 else 0.0
    median = statistics.median(classes[0][1])
    settled = w1 - w2 > alpha * remaining * runner_up_mean
    confident = median > threshold and len(classes[0][1]) >= min_leading
    return StopDecision(
        settled and confident,
        "settled" if settled and confident else ("low confidence" if settled else "contested"),
        w1,
        w2,
        n2,
        median,
        remaining,
    )


def safe_stop(
    tally: AnswerTally,
    *,
    method: VoteMethod,
    aggregation: Aggregation,
    new_leaves: int | None,
    rewards_in_unit_range: bool = True,
    w_max: float = W_MAX,
) -> StopDecision:
    """The safe rule (see the module docstring for the bound and its proof).

    Args:
        tally: the finished leaves' classes; must hold `aggregation` scores.
        method, aggregation: the algorithm's final vote.
        new_leaves: R, at most this many voting leaves are still to come
            (`leaf_bound.max_new_leaves`); None: unknown, never stop.
        rewards_in_unit_range: every reward seen so far lies in [0, 1]. The
            bound assumes it (the RewardModel contract); a reward outside it
            voids the proof, so weighted and best votes then never stop.
        w_max: cap on a future leaf's weight (`leaf_bound.max_leaf_weight`;
            at most 1); a majority vote counts every leaf as 1 regardless.
    """
    if new_leaves is None:
        return StopDecision(False, "no leaf bound for this algorithm")
    if not tally.classes:
        return StopDecision(False, "no answer yet", remaining=new_leaves)
    if method != "majority" and not rewards_in_unit_range:
        return StopDecision(False, "reward outside [0, 1]", remaining=new_leaves)
    ranked = tally.ranked(method, aggregation)
    leader = ranked[0]
    w1 = leader.weight(method, aggregation)
    w2 = ranked[1].weight(method, aggregation) if len(ranked) > 1 else 0.0
    n2 = ranked[1].count if len(ranked) > 1 else 0
    if new_leaves == 0:
        settled = True
    elif method == "best":
        cap = min(w_max, W_MAX)
        settled = w1 > cap or (w1 >= cap and leader.index == 0)
    else:
        cap = 1.0 if method == "majority" else min(w_max, W_MAX)
        settled = w1 - w2 > new_leaves * cap
    return StopDecision(settled, "settled" if settled else "contested", w1, w2, n2, 0.0, new_leaves)


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
