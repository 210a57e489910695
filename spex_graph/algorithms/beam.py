"""Step-level beam search with a process reward model (search-and-learn style).

This follows HuggingFace's *search-and-learn* beam search, where `n` samples
per step are split into `n / M` beams that each expand `M` ways. Here the
knobs are named after what is kept:

* `width` (search-and-learn's `n / beam_width`): beams kept after each step;
* `expansion` (search-and-learn's `beam_width`, `M`): children per kept beam.

So every step samples `width × expansion` candidates (search-and-learn's `n`):

1. the root gets `width × expansion` children (one step each);
2. after each step, the top `k = width − finished` *live* candidates by step
   reward are kept (equal rewards: lower id first) and the rest are PRUNED,
   where `finished` counts the terminal leaves so far;
3. each kept beam gets `expansion` children; repeat.

The search stops when `k ≤ 0` (as many finished leaves as beams) or when no
candidate is live (every path ended or hit the depth cap); the finished
leaves vote. Unlike search-and-learn, which refills its active beams back to
`n` after some complete, a finished leaf here retires one beam for good,
like REBASE's "finished leaves free width", so the search ends after about
`width` finished solutions and its cost stays comparable with REBASE's.

The selection is the pure function `select_top` (also `Beam.select`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from spex_graph.algorithms._common import (
    allocation_orders,
    answered_leaves,
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
from spex_graph.tree import SearchTree
from spex_graph.voting import Aggregation, VoteMethod

__all__ = ["Beam", "select_top"]


def select_top(rewards: Mapping[int, float], k: int) -> list[int]:
    """The `k` ids with the highest reward, best first; equal rewards: lower id first.

    Pure. Returns all ids when `k` exceeds their number and [] when `k ≤ 0`.
    """
    if k <= 0:
        return []
    return sorted(rewards, key=lambda i: (-rewards[i], i))[:k]


@dataclass(frozen=True)
class Beam:
    """Step-level beam search (see the module docstring for the algorithm).

    Attributes:
        width: beams kept after each step (search-and-learn's `n / beam_width`);
            finished leaves retire beams, so it is also the leaves aimed for.
        expansion: children sampled per kept beam (search-and-learn's `beam_width`).
        aggregation: how a leaf's path rewards combine into its vote weight.
        vote: how the finished leaves pick the final answer.
        max_depth: the depth cap (steps); the driver marks nodes this deep TERMINAL.
    """

    name: ClassVar[str] = "beam"

    width: int = 8
    expansion: int = 4
    aggregation: Aggregation = "min"
    vote: VoteMethod = "weighted"
    max_depth: int = 20

    def __post_init__(self) -> None:
        check_int(self.name, "width", self.width, 1)
        check_int(self.name, "expansion", self.expansion, 1)
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    def select(self, rewards: Mapping[int, float], k: int) -> list[int]:
        """`select_top(rewards, k)`: the beams to keep (pure)."""
        return select_top(rewards, k)

    @property
    def traits(self) -> AlgorithmTraits:
        """Layered: width * expansion children per round."""
        return AlgorithmTraits(
            layered=True, children_per_round=self.width * self.expansion, fixed_fan_out=True
        )

    def start(self, tree: SearchTree) -> SearchState:
        """The root gets `width × expansion` children (one step's worth of samples)."""
        return SearchState(frontier=[0], allocation={0: self.width * self.expansion})

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """One order per kept beam; [] once done."""
        return allocation_orders(state)

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """Keep the top `width − finished` live candidates; prune the others."""
        st = state.clone()
        if st.done:
            return st
        st.iteration += 1
        live = live_nodes(tree, new_ids, self.max_depth)
        k = self.width - finished_count(tree)
        if k <= 0:
            return finish(tree, st, "width")
        if not live:
            return finish(tree, st, layer_stop_reason(tree, new_ids, self.max_depth))
        kept = self.select({i: reward_of(tree.node(i)) for i in live}, k)
        prune(tree, sorted(set(live) - set(kept)))
        st.frontier = sorted(kept)
        st.allocation = dict.fromkeys(st.frontier, self.expansion)
        return st

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal leaf with an answer."""
        return answered_leaves(tree)
