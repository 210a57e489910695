"""Helpers shared by the search algorithms: knob validation, node queries, finishing.

Everything here is pure bookkeeping over a `SearchTree` and a `SearchState`;
nothing awaits, sleeps or reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import get_args

from spex_graph.algorithms.base import ExpandOrder, SearchState
from spex_graph.config import MAX_DEPTH, MAX_WIDTH
from spex_graph.errors import ConfigError
from spex_graph.tree import NodeStatus, SearchNode, SearchTree
from spex_graph.voting import Aggregation, VoteMethod

VOTE_METHODS: tuple[str, ...] = get_args(VoteMethod)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


# --------------------------------------------------------------------------- validation


KNOB_CAPS: dict[str, int] = {
    "width": MAX_WIDTH,
    "expansion": 64,
    "rollouts": 10_000,
    "max_depth": MAX_DEPTH,
    "max_nodes": 1_000_000,
}
"""Upper bounds on size knobs: a typo (width 10**6, rollouts 10**6) fails fast instead
of growing to gigabytes or blocking the shared event loop for minutes."""


def check_int(algo: str, knob: str, value: object, low: int) -> None:
    """Raise ConfigError unless `value` is an int ≥ `low` (and ≤ its KNOB_CAPS bound)."""
    high = KNOB_CAPS.get(knob)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{algo}: {knob} must be an integer ≥ {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{algo}: {knob} must be at most {high}, got {value!r}")


def check_float(
    algo: str,
    knob: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> None:
    """Raise ConfigError unless `value` is a finite-or-bounded number in the given range."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and not math.isnan(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        lo = f"> {low}" if low_open else f"≥ {low}"
        hi = "" if high == math.inf else f" and ≤ {high}"
        raise ConfigError(f"{algo}: {knob} must be a number {lo}{hi}, got {value!r}")


def check_choice(algo: str, knob: str, value: object, choices: Iterable[str]) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    options = tuple(choices)
    if value not in options:
        raise ConfigError(f"{algo}: {knob} must be one of {', '.join(options)}; got {value!r}")


def check_vote(algo: str, vote: object, aggregation: object) -> None:
    """Validate the shared `vote` and `aggregation` knobs."""
    check_choice(algo, "vote", vote, VOTE_METHODS)
    check_choice(algo, "aggregation", aggregation, AGGREGATIONS)


# --------------------------------------------------------------------------- node queries


def reward_of(node: SearchNode) -> float:
    """A node's reward, 0.0 while unscored."""
    return node.reward if node.reward is not None else 0.0


def finished_count(tree: SearchTree) -> int:
    """Number of terminal nodes (finished leaves, with or without an answer)."""
    return sum(1 for n in tree.nodes if n.status == NodeStatus.TERMINAL)


def answered_leaves(tree: SearchTree) -> list[int]:
    """Ids of terminal nodes that carry an answer, in id order (the voters)."""
    return [n.id for n in tree.nodes if n.status == NodeStatus.TERMINAL and n.answer is not None]


def live_nodes(tree: SearchTree, ids: Iterable[int], max_depth: int) -> list[int]:
    """The ACTIVE nodes among `ids`, in id order.

    A node at or below the depth cap that the driver left ACTIVE is marked
    TERMINAL here (answer untouched), so the cap holds whatever the driver does.
    """
    out: list[int] = []
    for i in sorted(set(ids)):
        node = tree.node(i)
        if node.status != NodeStatus.ACTIVE:
            continue
        if node.depth >= max_depth:
            node.status = NodeStatus.TERMINAL
            continue
        out.append(i)
    return out


def prune(tree: SearchTree, ids: Iterable[int]) -> None:
    """Mark the ACTIVE nodes among `ids` as PRUNED (terminal ones stay terminal)."""
    for i in ids:
        node = tree.node(i)
        if node.status == NodeStatus.ACTIVE and i != 0:
            node.status = NodeStatus.PRUNED


def layer_stop_reason(tree: SearchTree, ids: Iterable[int], max_depth: int) -> str:
    """Why a layer left no live node: "depth" when it reached the cap, else "complete"."""
    return "depth" if any(tree.node(i).depth >= max_depth for i in ids) else "complete"


def finish(tree: SearchTree, state: SearchState, reason: str) -> SearchState:
    """Mark `state` finished and prune every ACTIVE childless non-root node.

    After this, each leaf of the tree is TERMINAL or PRUNED, so a trace shows
    exactly which paths the search gave up on.
    """
    state.done = True
    state.stop_reason = reason
    state.frontier = []
    state.allocation = {}
    state.open_nodes = []
    state.cursor = None
    prune(tree, (n.id for n in tree.nodes if n.id != 0 and not tree.children_of.get(n.id)))
    return state


def allocation_orders(state: SearchState) -> list[ExpandOrder]:
    """One order per frontier node with its allocated width; [] once done (BFS family)."""
    if state.done:
        return []
    return [
        ExpandOrder(i, state.allocation[i])
        for i in state.frontier
        if state.allocation.get(i, 0) > 0
    ]
