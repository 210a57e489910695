"""ETS: efficient tree search (Hooper et al., 2025), a KV-aware, coverage-aware REBASE.

ETS keeps REBASE's layer-by-layer search and its width budget
(`remaining = width − finished leaves`), but chooses *which* nodes keep
children by trading reward against two other goals:

* **KV sharing**: every distinct retained node holds KV cache, and a node
  whose prefix is already retained (a sibling of a kept node) is cheaper to
  keep than a cousin that also pins its own ancestors; spreading the width
  thinly over many distant nodes wastes memory for little gain;
* **coverage**: semantically distinct partial solutions should each survive,
  so the search does not collapse onto one line of reasoning.

The paper solves an integer linear program; this module uses a greedy
solver over the same objective, which is exact enough for a few dozen
candidates and costs microseconds:

1. `share_j = remaining · softmax(reward / temperature)_j`: the width REBASE
   would give node `j`;
2. **coverage**: the candidates are clustered by `step_key` (a normalised
   form of the step's last line: its numbers, or else its words). The best
   node of every cluster whose best reward is ≥ `coverage_floor` is kept,
   best cluster first, while width is left (if no cluster reaches the
   floor, the single best node is kept);
3. **KV-aware fill**: repeatedly add the candidate with the largest gain
   `share_j − kv_weight · new_nodes_j`, where `new_nodes_j` counts the nodes
   of `j`'s path not already retained by the kept set (1 for a sibling of a
   kept node, 2 for a cousin whose parent is not retained, ...), while the
   gain is > 0 and fewer than `remaining` nodes are kept;
4. every kept node gets 1 child, and the rest of the width is shared over the
   kept nodes in proportion to their softmax weights (largest remainder, ties
   to the lower id), so the widths sum to `remaining` exactly. The others are
   PRUNED.

`kv_weight = 0` and `coverage_floor > 1` keep every node (each ≥ 1 child);
a large `kv_weight` keeps only the coverage representatives. The selection
is the pure function `ets_allocate` (also `Ets.allocate`), for SPEX.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
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
from spex_graph.algorithms.rebase import apportion, softmax_weights
from spex_graph.tree import SearchTree
from spex_graph.voting import Aggregation, VoteMethod

__all__ = ["Ets", "ets_allocate", "step_key"]

_STEP_PREFIX = re.compile(r"^\s*(?:step\s*\d+\s*[:.)\-]?|\d+[.)](?=\s))\s*", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_WORD = re.compile(r"[a-z0-9]+")


def _canon_number(token: str) -> str:
    """`05` → `5`, `2.50` → `2.5`, `3.0` → `3`, `-0` → `0`; fractions kept as written."""
    if "/" in token:
        return token
    if "." in token:
        token = token.rstrip("0").rstrip(".")
    sign = "-" if token.startswith("-") else ""
    body = token.lstrip("-").lstrip("0") or "0"
    if body.startswith("."):
        body = "0" + body
    return "0" if body == "0" else sign + body


def step_key(text: str) -> str:
    """A cheap semantic key for a step: equal keys mean "the same thought".

    Takes the last non-empty line, drops a leading "Step 3:" / "3." label and
    lowercases it; the key is its numbers in order (`"num:12 7"`) when it has
    any, else its words (`"txt:factor the quadratic"`). Thousands separators
    and trailing zeros are normalised, so "x = 1,000.0" and "so x is 1000"
    share a key.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "txt:"
    last = _STEP_PREFIX.sub("", lines[-1]).lower()
    numbers = _NUMBER.findall(_THOUSANDS.sub("", last))
    if numbers:
        return "num:" + " ".join(_canon_number(n) for n in numbers)
    return "txt:" + " ".join(_WORD.findall(last))


def ets_allocate(
    rewards: Mapping[int, float],
    budget: int,
    *,
    temperature: float = 0.2,
    kv_weight: float = 0.5,
    coverage_floor: float = 0.5,
    clusters: Mapping[int, str] | None = None,
    paths: Mapping[int, Sequence[int]] | None = None,
) -> dict[int, int]:
    """ETS's selection: children per node (0 = prune); sums to `max(budget, 0)` exactly.

    Pure: depends only on its arguments (see the module docstring for the
    steps). `clusters` maps a node to its cluster key (missing: a cluster of
    its own); `paths` maps a node to the ids of its path from the first step
    down to itself (missing: the node alone, i.e. every node costs 1).
    """
    ids = sorted(rewards)
    out = dict.fromkeys(ids, 0)
    if budget <= 0 or not ids:
        return out
    reward = {i: rewards[i] if math.isfinite(rewards[i]) else 0.0 for i in ids}
    weight = softmax_weights(reward, temperature)
    share = {i: budget * weight[i] for i in ids}
    key = {i: clusters[i] if clusters is not None and i in clusters else f"#{i}" for i in ids}
    nodes = {
        i: frozenset(paths[i]) | {i} if paths is not None and i in paths else frozenset({i})
        for i in ids
    }

    # 1. coverage: the best node of every cluster that reaches the floor.
    by_reward = sorted(ids, key=lambda i: (-reward[i], i))
    seen: set[str] = set()
    reps: list[int] = []
    for i in by_reward:
        if key[i] in seen:
            continue
        seen.add(key[i])
        if reward[i] >= coverage_floor:
            reps.append(i)
    kept = (reps or by_reward[:1])[:budget]
    retained: set[int] = set().union(*(nodes[i] for i in kept))

    # 2. KV-aware greedy fill.
    rest = [i for i in ids if i not in kept]
    while rest and len(kept) < budget:
        gains = {i: share[i] - kv_weight * len(nodes[i] - retained) for i in rest}
        best = max(rest, key=lambda i: (gains[i], -i))
        if gains[best] <= 0:
            break
        kept.append(best)
        retained |= nodes[best]
        rest.remove(best)

    # 3. widths: one each, the rest in proportion to the softmax weights.
    extra = apportion({i: weight[i] for i in kept}, budget - len(kept))
    for i in kept:
        out[i] = 1 + extra[i]
    return out


@dataclass(frozen=True)
class Ets:
    """ETS tree search (see the module docstring for the algorithm).

    Attributes:
        width: total leaves the search aims for; also the root's child count
            and the width shared by every layer (finished leaves free width).
        temperature: softmax temperature over step rewards, as in REBASE (> 0).
        kv_weight: λ, the cost of retaining one more distinct node, in units
            of width; higher keeps fewer, closer nodes (≥ 0).
        coverage_floor: a cluster whose best reward reaches this keeps ≥ 1
            node; above 1 turns coverage off (≥ 0).
        aggregation: how a leaf's path rewards combine into its vote weight.
        vote: how the finished leaves pick the final answer.
        max_depth: the depth cap (steps); the driver marks nodes this deep TERMINAL.
    """

    name: ClassVar[str] = "ets"

    width: int = 16
    temperature: float = 0.2
    kv_weight: float = 0.5
    coverage_floor: float = 0.5
    aggregation: Aggregation = "min"
    vote: VoteMethod = "weighted"
    max_depth: int = 20

    def __post_init__(self) -> None:
        check_int(self.name, "width", self.width, 1)
        check_float(self.name, "temperature", self.temperature, low=0.0, low_open=True)
        check_float(self.name, "kv_weight", self.kv_weight, low=0.0)
        check_float(self.name, "coverage_floor", self.coverage_floor, low=0.0)
        check_vote(self.name, self.vote, self.aggregation)
        check_int(self.name, "max_depth", self.max_depth, 1)

    def allocate(
        self,
        rewards: Mapping[int, float],
        budget: int,
        clusters: Mapping[int, str] | None = None,
        paths: Mapping[int, Sequence[int]] | None = None,
    ) -> dict[int, int]:
        """`ets_allocate` with this config's knobs (pure)."""
        return ets_allocate(
            rewards,
            budget,
            temperature=self.temperature,
            kv_weight=self.kv_weight,
            coverage_floor=self.coverage_floor,
            clusters=clusters,
            paths=paths,
        )

    @property
    def traits(self) -> AlgorithmTraits:
        """Layered: width children per round."""
        return AlgorithmTraits(layered=True, children_per_round=self.width)

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
        alloc = self.allocate(
            {i: reward_of(tree.node(i)) for i in live},
            remaining,
            clusters={i: step_key(tree.node(i).text) for i in live},
            paths={i: [n.id for n in tree.path(i)] for i in live},
        )
        prune(tree, [i for i in live if alloc[i] == 0])
        st.frontier = [i for i in live if alloc[i] > 0]
        st.allocation = {i: alloc[i] for i in st.frontier}
        return st

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Every terminal leaf with an answer."""
        return answered_leaves(tree)
