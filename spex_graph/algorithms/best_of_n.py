"""Best-of-N: sample N whole solutions from the root and vote; the baseline for every search.

One round: the root gets `width` children, each generated to the end of the
solution (`until_end=True`), so every child is a complete, terminal leaf.
The leaves then vote: `majority` counts answers (self-consistency),
`weighted` sums each leaf's reward (an outcome reward model's score, as the
path is one node long), `best` takes the single best-scored leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from spex_graph.algorithms._common import answered_leaves, check_int, check_vote, finish
from spex_graph.algorithms.base import AlgorithmTraits, ExpandOrder, SearchState
from spex_graph.tree import SearchTree
from spex_graph.voting import Aggregation, VoteMethod

__all__ = ["BestOfN"]


@dataclass(frozen=True)
class BestOfN:
    """Best-of-N sampling (see the module docstring).

    Attributes:
        width: N, the number of complete solutions sampled.
        vote: "majority" (self-consistency), "weighted" (reward-weighted) or "best".
        aggregation: how a leaf's path rewards combine into its vote weight
            (the path is one node, so every choice gives the leaf's reward).
        max_depth: accepted for a uniform config and validated (≥ 1), but
            unused: each sample is one node that ends the solution.
    """

    name: ClassVar[str] = "bon"

    width: int = 16
    vote: VoteMethod = "majority"
    aggregation: Aggregation = "last"
    max_depth: int = 1

    def __post_init__(self) -> None:
        check_int(self.name, "width", self.width, 1)
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    @property
    def traits(self) -> AlgorithmTraits:
        """Layered: width children per round."""
        return AlgorithmTraits(layered=True, children_per_round=self.width, fixed_fan_out=True)

    def start(self, tree: SearchTree) -> SearchState:
        """Nothing sampled yet."""
        return SearchState()

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """`width` whole solutions from the root in the first round; [] afterwards."""
        if state.done or state.iteration > 0:
            return []
        return [ExpandOrder(0, self.width, until_end=True)]

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """The samples are in: the search is finished."""
        st = state.clone()
        if st.done:
            return st
        st.iteration += 1
        return finish(tree, st, "complete")

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal sample with an answer."""
        return answered_leaves(tree)
