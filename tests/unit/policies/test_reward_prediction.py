"""The speculator's guess for a reward that has not arrived: the known mean of the
node's siblings, or of its whole layer where the algorithm says so (REBASE)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spex_graph.algorithms import make_algorithm
from spex_graph.algorithms.base import ExpandOrder
from spex_graph.policies.speculation import Speculator
from spex_graph.tree import SearchTree


def _tree() -> tuple[SearchTree, dict[str, int]]:
    tree = SearchTree()
    a = tree.add_child(0, text="a", reward=0.9).id
    b = tree.add_child(0, text="b", reward=0.2).id
    a1 = tree.add_child(a, text="a1", reward=0.95).id
    a2 = tree.add_child(a, text="a2").id
    b1 = tree.add_child(b, text="b1", reward=0.1).id
    b2 = tree.add_child(b, text="b2").id
    return tree, {"a": a, "b": b, "a1": a1, "a2": a2, "b1": b1, "b2": b2}


def test_an_unknown_reward_is_predicted_from_its_siblings_or_its_layer() -> None:
    tree, ids = _tree()
    layer = {ids["a1"], ids["a2"], ids["b1"], ids["b2"]}
    assert Speculator._predict(tree, ids["a2"], layer) == pytest.approx(0.95)
    assert Speculator._predict(tree, ids["b2"], layer) == pytest.approx(0.1)
    by_layer = (0.95 + 0.1) / 2
    assert Speculator._predict(tree, ids["a2"], layer, by_layer=True) == pytest.approx(by_layer)
    assert Speculator._predict(tree, ids["b2"], layer, by_layer=True) == pytest.approx(by_layer)


def test_without_known_rewards_the_parents_reward_then_a_half() -> None:
    tree, ids = _tree()
    for by_layer in (False, True):
        pending = {ids["a2"], ids["b2"]}
        assert Speculator._predict(tree, ids["a2"], pending, by_layer) == pytest.approx(0.9)
    bare = SearchTree()
    child = bare.add_child(0, text="x").id
    assert Speculator._predict(bare, child, {child}) == 0.5


def test_rebase_alone_predicts_from_the_layer() -> None:
    priors = {
        name: make_algorithm(name, width=4).traits.reward_prior
        for name in ("rebase", "ets", "beam", "bestfirst", "mcts", "bon")
    }
    assert priors == {
        "rebase": "layer",
        "ets": "siblings",
        "beam": "siblings",
        "bestfirst": "siblings",
        "mcts": "siblings",
        "bon": "siblings",
    }


class _NothingFinished:
    """A session where no child of the orders has finished: every child is a guess."""

    def completion(self, key: tuple[int, ...]) -> None:
        return None

    def reward(self, key: tuple[int, ...]) -> None:
        return None


@pytest.mark.parametrize(
    ("algorithm", "queries", "expected"),
    [
        ("beam", 1, [0.95, 0.95, 0.1, 0.1]),
        ("rebase", 1, [0.525, 0.525, 0.525, 0.525]),
        ("rebase", 2, [0.95, 0.95, 0.1, 0.1]),  # shared: the siblings' prior
    ],
)
def test_a_guess_never_counts_another_guess_as_known(
    algorithm: str, queries: int, expected: list[float]
) -> None:
    """With no reward in the layer, each child takes its own parent's reward (a guess
    once counted the guesses before it as known); REBASE alone in the budget then
    gives the whole layer one guess, their mean, so its allocation spreads evenly."""
    tree, ids = _tree()
    speculator = Speculator.__new__(Speculator)
    speculator.ctx = SimpleNamespace(  # type: ignore[assignment]
        algorithm=make_algorithm(algorithm, width=4),
        dispatcher=SimpleNamespace(budget=SimpleNamespace(active_queries=queries)),
    )
    speculator.session = _NothingFinished()  # type: ignore[assignment]
    speculator._guessed = set()
    orders = [ExpandOrder(ids["a1"], 2), ExpandOrder(ids["b1"], 2)]
    new_ids, produced = speculator._grow(tree, orders, set())
    assert produced == 0
    assert [tree.node(i).reward for i in new_ids] == pytest.approx(expected)
