"""Monte-Carlo tree search over reasoning steps, in the style of rStar (Qi et al., 2024).

A *rollout* walks down from the root and extends one path to its end:

1. **select**: from the root, repeatedly move to the child with the highest
   UCT score `Q + c_uct · sqrt(ln N_parent / N)` (`Q = value_sum / N`);
   unvisited children score +∞ and go first, the higher-reward one first,
   then the lower id. PRUNED children are skipped. The walk stops at a node
   without children (or a terminal one): the *cursor*;
2. **expand**: the cursor gets `width` children (one propose/observe round);
3. **continue**: the rollout moves to the best new child (highest step
   reward, equal rewards: lower id) and expands it in turn, until that child
   is terminal (an answer, the end of the text, or the depth cap);
4. **back-propagate**: the leaf's value, `aggregate_rewards(path rewards,
   value)` (default "last": the leaf's own reward; "min" is the pessimistic
   PRM-style value of the whole path), is added to `value_sum` and `visits`
   of every node from the root down to the leaf.

If selection reaches a terminal node, its value is back-propagated again
and the rollout counts as done without new generation, so a fully explored
tree cannot loop: every rollout either generates or is counted. A cursor
whose expansion produced nothing is PRUNED (and counted the same way).
The search stops when `rollouts_done ≥ rollouts`; every terminal leaf with
an answer votes. At most `rollouts × max_depth × width` nodes are generated.

Statistics live in `SearchState.visits` / `value_sum` (keyed by node id); the
cursor of the running rollout in `SearchState.cursor`. The selection rule is
the pure pair `uct_score` / `select_leaf`; `select_leaf` also takes virtual
visit counts so SPEX can pre-explore the next rollouts (virtual loss).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from spex_graph.algorithms._common import (
    AGGREGATIONS,
    answered_leaves,
    check_choice,
    check_float,
    check_int,
    check_vote,
    finish,
    reward_of,
)
from spex_graph.algorithms.base import AlgorithmTraits, ExpandOrder, SearchState
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import Aggregation, VoteMethod, aggregate_rewards

__all__ = ["Mcts", "backpropagate", "select_leaf", "uct_score"]


def uct_score(value_sum: float, visits: int, parent_visits: int, c_uct: float) -> float:
    """UCT of a child: `value_sum / visits + c_uct · sqrt(ln parent_visits / visits)`.

    An unvisited child scores +∞; a parent with fewer than one visit counts as one.
    """
    if visits <= 0:
        return math.inf
    explore = math.sqrt(math.log(max(parent_visits, 1)) / visits)
    return value_sum / visits + c_uct * explore


def select_leaf(
    tree: SearchTree,
    state: SearchState,
    c_uct: float,
    virtual_visits: Mapping[int, int] | None = None,
) -> int:
    """Walk down from the root by UCT; return the node where the walk stops.

    Pure. The walk stops at a terminal node, a node without children, or an
    expanded node whose children are all PRUNED (a dead end). At each step the
    child with the highest `(uct_score, reward, -id)` wins. `virtual_visits`
    adds visits that carry no value (virtual loss) to the real counts of both
    child and parent, so nodes already being explored look less attractive.
    """
    extra = virtual_visits or {}

    def visits(i: int) -> int:
        return state.visits.get(i, 0) + extra.get(i, 0)

    node = 0
    while True:
        if tree.node(node).status == NodeStatus.TERMINAL or not tree.children_of.get(node):
            return node
        kids = [c for c in tree.children(node) if c.status != NodeStatus.PRUNED]
        if not kids:
            return node
        parent_n = visits(node)
        node = max(
            kids,
            key=lambda c: (
                uct_score(state.value_sum.get(c.id, 0.0), visits(c.id), parent_n, c_uct),
                reward_of(c),
                -c.id,
            ),
        ).id


def backpropagate(tree: SearchTree, state: SearchState, leaf: int, value: float) -> None:
    """Add one visit and `value` to every node from the root down to `leaf` (in place)."""
    for i in [0, *(n.id for n in tree.path(leaf))]:
        state.visits[i] = state.visits.get(i, 0) + 1
        state.value_sum[i] = state.value_sum.get(i, 0.0) + value


@dataclass(frozen=True)
class Mcts:
    """rStar-style MCTS (see the module docstring for a rollout).

    Attributes:
        rollouts: rollouts to run (each generates one path, or re-visits a leaf).
        width: children per expansion; also the search's nominal width.
        c_uct: UCT exploration constant (≥ 0; 0 is greedy on Q).
        value: how a leaf's path rewards become the back-propagated value
            ("last": the leaf's reward; "min", "prod", "mean" over the path).
        aggregation: how a leaf's path rewards combine into its vote weight.
        vote: how the finished leaves pick the final answer.
        max_depth: the depth cap (steps); the driver marks nodes this deep TERMINAL.
    """

    name: ClassVar[str] = "mcts"

    rollouts: int = 10
    width: int = 4
    c_uct: float = 1.4
    value: Aggregation = "last"
    aggregation: Aggregation = "min"
    vote: VoteMethod = "weighted"
    max_depth: int = 20

    def __post_init__(self) -> None:
        check_int(self.name, "rollouts", self.rollouts, 1)
        check_int(self.name, "width", self.width, 1)
        check_float(self.name, "c_uct", self.c_uct, low=0.0)
        check_choice(self.name, "value", self.value, AGGREGATIONS)
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    def uct(self, tree: SearchTree, state: SearchState, node_id: int) -> float:
        """UCT score of `node_id` under its parent, from the real statistics."""
        parent = tree.node(node_id).parent
        parent_n = state.visits.get(parent, 0) if parent is not None else 0
        return uct_score(
            state.value_sum.get(node_id, 0.0),
            state.visits.get(node_id, 0),
            parent_n,
            self.c_uct,
        )

    def select_leaf(
        self,
        tree: SearchTree,
        state: SearchState,
        virtual_visits: Mapping[int, int] | None = None,
    ) -> int:
        """`select_leaf` with this config's `c_uct` (pure)."""
        return select_leaf(tree, state, self.c_uct, virtual_visits)

    def leaf_value(self, tree: SearchTree, leaf: int) -> float:
        """The value back-propagated for `leaf` (its path rewards, aggregated by `value`)."""
        return aggregate_rewards(tree.path_rewards(leaf), self.value)

    @property
    def traits(self) -> AlgorithmTraits:
        """Not layered: width children per round, rollouts."""
        return AlgorithmTraits(
            layered=False,
            children_per_round=self.width,
            rollouts=self.rollouts,
            fixed_fan_out=True,
        )

    def start(self, tree: SearchTree) -> SearchState:
        """The first rollout expands the root."""
        return SearchState(cursor=0)

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """Expand the rollout's cursor into `width` children; [] once done."""
        if state.done or state.cursor is None:
            return []
        return [ExpandOrder(state.cursor, self.width)]

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """Continue the rollout from the best new child, or close it and start the next."""
        st = state.clone()
        if st.done or st.cursor is None:
            return st
        st.iteration += 1
        cursor = st.cursor
        kids = [tree.node(i) for i in sorted(set(new_ids))]
        if not kids:
            if cursor == 0:
                return finish(tree, st, "exhausted")
            tree.node(cursor).status = NodeStatus.PRUNED
            return self._close(tree, st, cursor)
        for kid in kids:
            if kid.status == NodeStatus.ACTIVE and kid.depth >= self.max_depth:
                kid.status = NodeStatus.TERMINAL
        best = max(kids, key=lambda n: (reward_of(n), -n.id))
        if best.status == NodeStatus.ACTIVE:
            st.cursor = best.id
            return st
        return self._close(tree, st, best.id)

    def _close(self, tree: SearchTree, st: SearchState, leaf: int) -> SearchState:
        """Back-propagate `leaf`, count the rollout, and select the next cursor."""
        backpropagate(tree, st, leaf, self.leaf_value(tree, leaf))
        st.rollouts_done += 1
        while st.rollouts_done < self.rollouts:
            nxt = self.select_leaf(tree, st)
            node = tree.node(nxt)
            if (
                node.status == NodeStatus.ACTIVE
                and not tree.children_of.get(nxt)
                and node.depth < self.max_depth
            ):
                st.cursor = nxt
                return st
            if nxt == 0:
                return finish(tree, st, "exhausted")
            if node.status == NodeStatus.ACTIVE:
                # A dead end (every child pruned) or a node past the depth cap.
                has_kids = bool(tree.children_of.get(nxt))
                node.status = NodeStatus.PRUNED if has_kids else NodeStatus.TERMINAL
            backpropagate(tree, st, nxt, self.leaf_value(tree, nxt))
            st.rollouts_done += 1
        return finish(tree, st, "rollouts")

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal leaf with an answer."""
        return answered_leaves(tree)
