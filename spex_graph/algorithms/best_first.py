"""Best-first search: Tree-of-Thoughts BFS (Yao et al., 2023) or a global priority queue.

`mode="bfs"` (default) is ToT's breadth-first search with a value function:

1. the root gets `expansion` proposals (ToT's k);
2. every new state is valued (the step reward) and the `width` best live
   states of the layer are kept (ToT's b; equal rewards: lower id first);
   all other live states of the layer are PRUNED, for good;
3. each kept state gets `expansion` proposals; repeat until no live state is
   left (every path ended or hit `max_depth`, ToT's step limit T).

For Game of 24 ToT uses b = 5 and T = 3 (+ the answer step). Finished leaves
do not consume width (as in ToT) and they all vote at the end.

`mode="global"` is classic best-first search over a priority queue: every
scored, unexpanded live node stays in the open list (`state.open_nodes`)
whatever its depth, and each round pops the `width` best of them (a batch,
so the engine stays busy; `width=1` is textbook best-first) and gives each
`expansion` children. Unlike BFS it can back-track to a shallow node whose
deeper descendants scored badly, and it can dive deep on one promising line.
It stops when `width` finished leaves exist (as REBASE), the open list is
empty, or the node budget is spent; the open nodes left are PRUNED.

Both modes share the node budget `max_nodes` (default `width × expansion ×
max_depth`, BFS's worst case): a round never generates past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from spex_graph.algorithms._common import (
    allocation_orders,
    answered_leaves,
    check_choice,
    check_int,
    check_vote,
    finish,
    finished_count,
    layer_stop_reason,
    live_nodes,
    prune,
    reward_of,
)
from spex_graph.algorithms.base import AlgorithmTraits, ExpandOrder, SearchState
from spex_graph.algorithms.beam import select_top
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import Aggregation, VoteMethod

__all__ = ["BestFirst", "BestFirstMode"]

BestFirstMode = Literal["bfs", "global"]


@dataclass(frozen=True)
class BestFirst:
    """Best-first search (see the module docstring for both modes).

    Attributes:
        width: ToT's b: states kept per layer (bfs), or nodes popped per round
            and finished leaves aimed for (global).
        expansion: ToT's k: proposals (children) generated per expanded state.
        mode: "bfs" (ToT BFS, layer by layer) or "global" (priority queue).
        max_nodes: most nodes the search may generate; None means
            `width × expansion × max_depth`.
        aggregation: how a leaf's path rewards combine into its vote weight.
        vote: how the finished leaves pick the final answer.
        max_depth: the depth cap (steps); the driver marks nodes this deep TERMINAL.
    """

    name: ClassVar[str] = "bestfirst"

    width: int = 5
    expansion: int = 4
    mode: BestFirstMode = "bfs"
    max_nodes: int | None = None
    aggregation: Aggregation = "min"
    vote: VoteMethod = "weighted"
    max_depth: int = 20

    def __post_init__(self) -> None:
        check_int(self.name, "width", self.width, 1)
        check_int(self.name, "expansion", self.expansion, 1)
        check_choice(self.name, "mode", self.mode, ("bfs", "global"))
        if self.max_nodes is not None:
            check_int(self.name, "max_nodes", self.max_nodes, 1)
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    @property
    def node_budget(self) -> int:
        """Most nodes the search generates (`max_nodes` or its default)."""
        if self.max_nodes is not None:
            return self.max_nodes
        return self.width * self.expansion * self.max_depth

    def select(self, rewards: Mapping[int, float], k: int) -> list[int]:
        """`select_top(rewards, k)`: the states to expand next, best first (pure)."""
        return select_top(rewards, k)

    def _plan(self, tree: SearchTree, st: SearchState, chosen: list[int]) -> SearchState:
        """Give each chosen node `expansion` children, best first, within the node budget."""
        left = self.node_budget - (len(tree) - 1)
        st.frontier, st.allocation = [], {}
        for i in chosen:
            n = min(self.expansion, left)
            if n <= 0:
                break
            st.frontier.append(i)
            st.allocation[i] = n
            left -= n
        return st

    @property
    def traits(self) -> AlgorithmTraits:
        """Layered in BFS mode: width * expansion children per round."""
        return AlgorithmTraits(
            layered=self.mode == "bfs",
            children_per_round=self.width * self.expansion,
            fixed_fan_out=True,
        )

    def start(self, tree: SearchTree) -> SearchState:
        """The root gets `expansion` children."""
        return self._plan(tree, SearchState(), [0])

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """One order per chosen state, best first; [] once done."""
        return allocation_orders(state)

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """Value the new states and choose the next ones to expand."""
        st = state.clone()
        if st.done:
            return st
        st.iteration += 1
        live = live_nodes(tree, new_ids, self.max_depth)
        if self.mode == "bfs":
            pool = live
        else:
            if finished_count(tree) >= self.width:
                return finish(tree, st, "width")
            pool = [i for i in st.open_nodes if tree.node(i).status == NodeStatus.ACTIVE] + live
        if not pool:
            return finish(tree, st, layer_stop_reason(tree, new_ids, self.max_depth))
        if len(tree) - 1 >= self.node_budget:
            return finish(tree, st, "budget")
        chosen = self.select({i: reward_of(tree.node(i)) for i in pool}, self.width)
        st = self._plan(tree, st, chosen)
        if self.mode == "bfs":
            prune(tree, sorted(set(pool) - set(st.frontier)))
        else:
            st.open_nodes = sorted(set(pool) - set(st.frontier))
        return st

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal leaf with an answer."""
        return answered_leaves(tree)
