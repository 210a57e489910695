"""How many more voting leaves a search can still produce (the safe rule's R), and
how heavy each can be (its w_max).

`max_new_leaves(algorithm, tree, state)` is an upper bound on the TERMINAL
nodes the search adds from this point on if it runs to its own end, read from
the algorithm's rules (each bound is proved in its helper's docstring). Every
vote counts only TERMINAL nodes with an answer, a TERMINAL node stays TERMINAL,
and a node gets its answer when it is created, so no more than this many new
voters can ever join. Algorithms it does not know get None (no bound: the safe
rule never stops them).

`max_leaf_weight(algorithm, tree, state, aggregation)` caps the vote weight of
any future leaf. Every future node descends from a node the search can still
expand (`growth_points`), and with rewards in [0, 1] a path's min (or product)
can only fall as it grows, so a future leaf weighs at most the best growth
point's path min (product). Other aggregations, or an unknown algorithm: 1.
"""

from __future__ import annotations

from spex_graph.algorithms import Beam, BestFirst, BestOfN, Ets, Mcts, Rebase, SearchState
from spex_graph.algorithms._common import finished_count
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import Aggregation, aggregate_rewards

__all__ = ["growth_points", "max_leaf_weight", "max_new_leaves"]


def _width_bound(width: int, finished: int) -> int:
    """REBASE and ETS: at most `width − finished` more leaves.

    Proof. After an observe with f finished leaves and the search not done, the
    next layer's allocation sums to exactly `remaining = width − f` (largest
    remainder apportionment, in both algorithms), so the layer has at most
    `width − f` children and at most that many of them are TERMINAL: f' ≤ width.
    Each later layer repeats this with f', so the finished count never exceeds
    `width`, and the new leaves number at most `width − f`. ∎
    """
    return max(0, width - finished)


def _beam_bound(width: int, expansion: int, finished: int) -> int:
    """Beam search: at most `(width − finished) × expansion` more leaves.

    Proof by induction on the layers left. With f < width finished, at most
    k = width − f beams are kept, each gets `expansion` (E) children, so the
    next layer adds t ≤ kE leaves. If f + t ≥ width the search ends: T = t ≤ kE.
    Otherwise T = t + T(f + t) ≤ t + (k − t)E ≤ kE, as E ≥ 1. ∎
    """
    return max(0, width - finished) * expansion


def _best_first_bound(algo: BestFirst, tree: SearchTree, state: SearchState) -> int:
    """Best-first: no more leaves than nodes left in the node budget, and

    * bfs: each layer expands at most `width` states with at most `expansion`
      children each, and layers stop at `max_depth`: with the frontier at depth
      d, at most `Σ allocation + (max_depth − d − 1) × width × expansion`;
    * global: a round runs only while fewer than `width` leaves are finished,
      so before the last round at most `width − 1 − f` leaves are added and the
      last round adds at most `width × expansion`.

    Proof. The node budget: `_plan` never allocates past `max_nodes`, and each
    new node is at most one new leaf. bfs: children only of frontier states,
    ≤ width × expansion per layer, no state deeper than `max_depth` is
    expanded. global: the search finishes at the first observe that sees
    ≥ `width` leaves, so every round but the last starts and ends with fewer. ∎
    """
    left = max(0, algo.node_budget - (len(tree) - 1))
    planned = sum(state.allocation.values())
    per_round = algo.width * algo.expansion
    if algo.mode == "bfs":
        depth = min((tree.node(i).depth for i in state.frontier), default=algo.max_depth)
        bound = planned + max(0, algo.max_depth - depth - 1) * per_round
    else:
        bound = max(0, algo.width - 1 - finished_count(tree)) + per_round
    return min(left, bound)


def _rollout_bound(width: int, max_depth: int, depth: int) -> int:
    """Leaves one MCTS rollout adds when it starts expanding a node at `depth`.

    The rollout expands nodes at depths depth, depth + 1, ..., at most
    `max_depth − 1` (children at the cap are TERMINAL). After each expansion it
    continues from the best child when that child is live, so a non-final
    expansion adds at most `width − 1` TERMINAL children, the final one at most
    `width`: `(max_depth − depth − 1) × (width − 1) + width`.
    """
    if max_depth - depth <= 0:
        return 0
    return (max_depth - depth - 1) * (width - 1) + width


def _mcts_bound(algo: Mcts, tree: SearchTree, state: SearchState) -> int:
    """MCTS: the running rollout (from its cursor's depth) plus every rollout left.

    Proof. A rollout either generates along one path (`_rollout_bound`) or
    revisits a TERMINAL node or a dead end and adds nothing. Later rollouts
    start below the root (a selection that returns the root ends the search),
    so from depth ≥ 1. `rollouts_done` counts closed rollouts; the cursor's
    rollout is the next one, and `rollouts − rollouts_done − 1` follow it. ∎
    """
    if state.cursor is None:
        return 0
    current = _rollout_bound(algo.width, algo.max_depth, tree.node(state.cursor).depth)
    later = max(0, algo.rollouts - state.rollouts_done - 1)
    return current + later * _rollout_bound(algo.width, algo.max_depth, 1)


def max_new_leaves(algorithm: object, tree: SearchTree, state: SearchState) -> int | None:
    """Upper bound on the TERMINAL nodes the search still adds (see the module
    docstring); None for an algorithm without a known bound."""
    if state.done:
        return 0
    if isinstance(algorithm, Rebase | Ets):
        return _width_bound(algorithm.width, finished_count(tree))
    if isinstance(algorithm, Beam):
        return _beam_bound(algorithm.width, algorithm.expansion, finished_count(tree))
    if isinstance(algorithm, BestFirst):
        return _best_first_bound(algorithm, tree, state)
    if isinstance(algorithm, Mcts):
        return _mcts_bound(algorithm, tree, state)
    if isinstance(algorithm, BestOfN):
        return algorithm.width
    return None


def growth_points(algorithm: object, tree: SearchTree, state: SearchState) -> list[int] | None:
    """Nodes every future node descends from; None when unknown.

    BFS family: the frontier (only it is expanded next, and later layers descend
    from it); best-first global: also its open list. MCTS: every ACTIVE childless
    node above the depth cap (only such a node becomes a rollout's cursor, and a
    rollout only extends the cursor's new children).
    """
    if state.done:
        return []
    if isinstance(algorithm, Mcts):
        return [
            n.id
            for n in tree.nodes[1:]
            if n.status == NodeStatus.ACTIVE
            and not tree.children_of.get(n.id)
            and n.depth < algorithm.max_depth
        ]
    if isinstance(algorithm, Rebase | Ets | Beam | BestFirst):
        return sorted({*state.frontier, *state.open_nodes})
    return None


def max_leaf_weight(
    algorithm: object, tree: SearchTree, state: SearchState, aggregation: Aggregation
) -> float:
    """Upper bound on a future leaf's vote weight (see the module docstring), for
    rewards in [0, 1]."""
    points = growth_points(algorithm, tree, state) if aggregation in ("min", "prod") else None
    if points is None:
        return 1.0
    if 0 in points:  # the root: a path of new nodes only
        return 1.0
    return max((aggregate_rewards(tree.path_rewards(i), aggregation) for i in points), default=0.0)
