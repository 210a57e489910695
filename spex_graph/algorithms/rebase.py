"""REBASE: reward-balanced tree search (Wu et al., 2024, "Inference Scaling Laws").

REBASE grows the tree one depth at a time. The root gets `width` children.
At every later depth the live (non-terminal) children of the newest layer
share the *remaining* width, where

    remaining = width − (finished leaves so far)

so every finished leaf (an answer, the end of the text or the depth cap)
frees one unit of width. Each live node gets a share of `remaining` by
softmax(reward / temperature), rounded the way the reference code rounds it
(`allocation="reference"`, the default; `select_softmax` in the REBASE and
SPEX artifacts, PKU-SEC-Lab/SPEX utils.py): sort the nodes by reward, best
first, with e_i = exp(reward_i / T), and give

    n_i = ceil(W_i · e_i / Σ_{j ≥ i} e_j),   W_1 = remaining,   W_{i+1} = W_i − n_i

children, so the best nodes are rounded up and the widths still sum to
`remaining` exactly. `allocation="largest-remainder"` rounds
`remaining · softmax_j` with the largest-remainder method instead (equal
remainders to the lower node id). A node that gets 0 children is PRUNED. The
search stops when `remaining ≤ 0` or when no live node is left; the finished
leaves then vote on the answer.

The selection itself is the pure function `rebase_allocate` (also the method
`Rebase.allocate`): SPEX calls it with partial or predicted rewards to guess
the next selection before every reward of the layer is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from spex_graph.algorithms._common import (
    allocation_orders,
    answered_leaves,
    check_float,
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
from spex_graph.errors import ConfigError
from spex_graph.tree import SearchTree
from spex_graph.voting import Aggregation, VoteMethod

__all__ = [
    "ALLOCATIONS",
    "Rebase",
    "apportion",
    "rebase_allocate",
    "reference_apportion",
    "softmax_weights",
]

ALLOCATIONS = ("reference", "largest-remainder")
"""How REBASE rounds its softmax shares (see the module docstring)."""


def _finite(x: float) -> float:
    """`x`, or 0.0 when it is NaN or infinite (a broken reward must not poison a layer)."""
    return x if math.isfinite(x) else 0.0


def softmax_weights(rewards: Mapping[int, float], temperature: float) -> dict[int, float]:
    """softmax(reward / temperature) over the nodes, keyed by node id (sums to 1).

    Non-finite rewards count as 0.0. An empty mapping gives an empty dict.
    """
    if not rewards:
        return {}
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    ids = sorted(rewards)
    scaled = {i: _finite(rewards[i]) / temperature for i in ids}
    top = max(scaled.values())
    exps = {i: math.exp(scaled[i] - top) for i in ids}
    total = sum(exps.values())
    return {i: exps[i] / total for i in ids}


def apportion(weights: Mapping[int, float], total: int) -> dict[int, int]:
    """Split `total` units over the keys in proportion to `weights` (largest remainder).

    Each key gets `floor(total · w / Σw)`, and the units left over go one by one
    to the largest fractional parts, equal parts to the lower id. The result
    sums to exactly `max(total, 0)` and never holds a negative count. Negative
    or non-finite weights count as 0; all-zero weights split evenly.
    """
    ids = sorted(weights)
    out = dict.fromkeys(ids, 0)
    if total <= 0 or not ids:
        return out
    clean = {i: max(_finite(weights[i]), 0.0) for i in ids}
    mass = sum(clean.values())
    if mass <= 0:
        clean, mass = dict.fromkeys(ids, 1.0), float(len(ids))
    quotas = {i: total * clean[i] / mass for i in ids}
    for i in ids:
        out[i] = min(math.floor(quotas[i]), total)
    left = total - sum(out.values())
    # Rounding the fractional parts makes mathematically equal quotas tie exactly.
    order = sorted(ids, key=lambda i: (-round(quotas[i] - math.floor(quotas[i]), 12), i))
    for k in range(left):
        out[order[k % len(order)]] += 1
    return out


def reference_apportion(
    rewards: Mapping[int, float], total: int, temperature: float
) -> dict[int, int]:
    """The reference code's rounding of softmax shares (REBASE / SPEX `select_softmax`).

    Nodes in descending reward order (equal rewards: lower id first) get
    `ceil(W · e_i / Σ_{j ≥ i} e_j)` each, W shrinking by every grant. Shares within
    1e-9 of an integer count as that integer (float noise must not round a whole
    share up). Non-finite rewards count as 0.0. Sums to `max(total, 0)`.
    """
    ids = sorted(rewards, key=lambda i: (-_finite(rewards[i]), i))
    out = dict.fromkeys(sorted(rewards), 0)
    if total <= 0 or not ids:
        return out
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    top = _finite(rewards[ids[0]])
    exps = [math.exp((_finite(rewards[i]) - top) / temperature) for i in ids]
    tails = [0.0] * (len(ids) + 1)
    for k in range(len(ids) - 1, -1, -1):
        tails[k] = tails[k + 1] + exps[k]
    left = total
    for k, i in enumerate(ids):
        if left <= 0:
            break
        share = left * exps[k] / tails[k] if tails[k] > 0 else float(left)
        n = min(left, max(0, math.ceil(share - 1e-9)))
        out[i] = n
        left -= n
    return out


def rebase_allocate(
    rewards: Mapping[int, float],
    budget: int,
    temperature: float = 0.2,
    allocation: str = "reference",
) -> dict[int, int]:
    """REBASE's selection: children per node, from the rewards and the remaining width.

    Pure: depends only on its arguments. Returns a count for every node in
    `rewards` (0 = prune); the counts sum to `max(budget, 0)` exactly.
    `allocation`: "reference" (the reference code's rounding) or "largest-remainder".
    """
    if allocation == "reference":
        return reference_apportion(rewards, budget, temperature)
    if allocation != "largest-remainder":
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    return apportion(softmax_weights(rewards, temperature), budget)


@dataclass(frozen=True)
class Rebase:
    """REBASE tree search (see the module docstring for the algorithm).

    Attributes:
        width: total leaves the search aims for; also the root's child count
            and the width shared by every layer (finished leaves free width).
        temperature: softmax temperature over step rewards; lower concentrates
            the width on the best nodes (must be > 0).
        allocation: "reference" (default: the reference code's ceil rounding) or
            "largest-remainder".
        aggregation: how a leaf's path rewards combine into its vote weight.
        vote: how the finished leaves pick the final answer.
        max_depth: the depth cap (steps); the driver marks nodes this deep TERMINAL.
    """

    name: ClassVar[str] = "rebase"

    width: int = 16
    temperature: float = 0.2
    allocation: str = "reference"
    aggregation: Aggregation = "min"
    vote: VoteMethod = "weighted"
    max_depth: int = 20

    def __post_init__(self) -> None:
        check_int(self.name, "width", self.width, 1)
        check_float(self.name, "temperature", self.temperature, low=0.0, low_open=True)
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(
                f"rebase: allocation must be one of {', '.join(ALLOCATIONS)}, "
                f"got {self.allocation!r}"
            )
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    def allocate(self, rewards: Mapping[int, float], budget: int) -> dict[int, int]:
        """`rebase_allocate` at this config's temperature (pure)."""
        return rebase_allocate(rewards, budget, self.temperature, self.allocation)

    @property
    def traits(self) -> AlgorithmTraits:
        """Layered: width children per round; speculation guesses a missing reward
        from its layer (the softmax shares the width over the whole layer)."""
        return AlgorithmTraits(layered=True, children_per_round=self.width, reward_prior="layer")

    def start(self, tree: SearchTree) -> SearchState:
        """The root gets `width` children."""
        return SearchState(frontier=[0], allocation={0: self.width})

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """One order per frontier node with its allocated width; [] once done."""
        return allocation_orders(state)

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """Allocate the remaining width over the new layer's live nodes; prune zeros."""
        st = state.clone()
        if st.done:
            return st
        st.iteration += 1
        live = live_nodes(tree, new_ids, self.max_depth)
        remaining = self.width - finished_count(tree)
        if remaining <= 0:
            return finish(tree, st, "width")
        if not live:
            return finish(tree, st, layer_stop_reason(tree, new_ids, self.max_depth))
        alloc = self.allocate({i: reward_of(tree.node(i)) for i in live}, remaining)
        prune(tree, [i for i in live if alloc[i] == 0])
        st.frontier = [i for i in live if alloc[i] > 0]
        st.allocation = {i: alloc[i] for i in st.frontier}
        return st

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal leaf with an answer."""
        return answered_leaves(tree)
