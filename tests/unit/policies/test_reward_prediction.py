"""The speculator's guess for a reward that has not arrived: its layer's known mean."""

from __future__ import annotations

import pytest

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


def test_an_unknown_reward_is_predicted_as_its_layers_known_mean() -> None:
    tree, ids = _tree()
    layer = {ids["a1"], ids["a2"], ids["b1"], ids["b2"]}
    # not the siblings' mean (0.95): the layer's, below the best paths' rewards
    assert Speculator._predict(tree, ids["a2"], layer) == pytest.approx((0.95 + 0.1) / 2)
    assert Speculator._predict(tree, ids["b2"], layer) == pytest.approx((0.95 + 0.1) / 2)


def test_without_known_rewards_in_the_layer_the_parents_reward_then_a_half() -> None:
    tree, ids = _tree()
    assert Speculator._predict(tree, ids["a2"], {ids["a2"], ids["b2"]}) == pytest.approx(0.9)
    bare = SearchTree()
    child = bare.add_child(0, text="x").id
    assert Speculator._predict(bare, child, {child}) == 0.5
