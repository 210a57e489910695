"""The safe rule's leaf bounds: no search adds more voting leaves than `max_new_leaves` says."""

from __future__ import annotations

from typing import Any

import pytest
from scripted import Step, random_script, run

from spex_graph.algorithms import Beam, BestFirst, BestOfN, Ets, Mcts, Rebase, SearchState
from spex_graph.algorithms._common import finished_count
from spex_graph.policies.leaf_bound import max_leaf_weight, max_new_leaves
from spex_graph.tree import SearchTree
from spex_graph.voting import aggregate_rewards


class BoundProbe:
    """Wraps an algorithm; after every observe records (finished leaves, nodes,
    leaf bound, weight caps for min and prod)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.checks: list[tuple[int, int, int | None, float, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        st = self.inner.observe(tree, state, new_ids)
        self.checks.append(
            (
                finished_count(tree),
                len(tree),
                max_new_leaves(self.inner, tree, st),
                max_leaf_weight(self.inner, tree, st, "min"),
                max_leaf_weight(self.inner, tree, st, "prod"),
            )
        )
        return st


ALGORITHMS = {
    "rebase": lambda s: Rebase(width=1 + s % 8, max_depth=2 + s % 5),
    "ets": lambda s: Ets(width=1 + s % 8, max_depth=2 + s % 5),
    "beam": lambda s: Beam(width=1 + s % 4, expansion=1 + s % 3, max_depth=2 + s % 5),
    "bestfirst-bfs": lambda s: BestFirst(width=1 + s % 3, expansion=1 + s % 3, max_depth=2 + s % 4),
    "bestfirst-global": lambda s: BestFirst(
        width=1 + s % 3, expansion=1 + s % 3, mode="global", max_depth=2 + s % 4
    ),
    "mcts": lambda s: Mcts(rollouts=1 + s % 6, width=1 + s % 3, max_depth=2 + s % 4),
    "bon": lambda s: BestOfN(width=1 + s % 8),
}


def flaky(seed: int) -> Any:
    """A random script where some children fail to appear."""
    base = random_script(seed, p_end=0.15 + (seed % 5) / 10)

    def script(path: tuple[int, ...], until_end: bool) -> Step | None:
        return None if hash((seed, path)) % 11 == 0 else base(path, until_end)

    return script


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_no_search_adds_more_leaves_or_heavier_leaves_than_its_bounds(name: str) -> None:
    tight = 0
    for seed in range(150):
        probe = BoundProbe(ALGORITHMS[name](seed))
        out = run(probe, flaky(seed))  # type: ignore[arg-type]
        final = finished_count(out.tree)
        tree = out.tree
        for finished, size, bound, cap_min, cap_prod in probe.checks:
            assert bound is not None
            assert final - finished <= bound, f"{name} seed {seed}: bound {bound} too small"
            tight += bound > 0 and final - finished == bound
            for leaf in tree.leaves()[:]:
                if leaf.id >= size:  # a leaf that came later
                    rewards = tree.path_rewards(leaf.id)
                    assert aggregate_rewards(rewards, "min") <= cap_min + 1e-12, (name, seed)
                    assert aggregate_rewards(rewards, "prod") <= cap_prod + 1e-12, (name, seed)
    if name in ("rebase", "ets", "beam"):
        assert tight > 0  # the bound is attained: it could not be any smaller


def test_unknown_algorithms_have_no_bound() -> None:
    assert max_new_leaves(object(), SearchTree(), SearchState()) is None
