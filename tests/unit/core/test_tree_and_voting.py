"""The flat search tree, seeds, prompts and voting."""

from __future__ import annotations

import pytest

from spex_graph.errors import ConfigError
from spex_graph.prompts import join_steps, render_chat
from spex_graph.tree import NodeStatus, SearchTree, derive_seed
from spex_graph.voting import aggregate_rewards, vote


def small_tree() -> SearchTree:
    tree = SearchTree()
    a = tree.add_child(0, text="a", reward=0.9)
    b = tree.add_child(0, text="b", reward=0.4)
    a1 = tree.add_child(a.id, text="a1 \\boxed{1}", reward=0.8)
    tree.add_child(a.id, text="a2", reward=0.1)
    b1 = tree.add_child(b.id, text="b1 \\boxed{2}", reward=0.9)
    for n, ans in ((a1, "1"), (b1, "2")):
        n.status, n.answer = NodeStatus.TERMINAL, ans
    return tree


def test_ids_paths_and_children_are_owned_by_the_tree() -> None:
    tree = small_tree()
    assert [n.id for n in tree.nodes] == [0, 1, 2, 3, 4, 5]
    assert tree.path_key(4) == (0, 1)
    assert tree.path_key(5) == (1, 0)
    assert tree.steps(3) == ["a", "a1 \\boxed{1}"]
    assert [c.id for c in tree.children(1)] == [3, 4]
    assert tree.node(4).depth == 2
    assert [n.id for n in tree.leaves()] == [3, 5]


def test_tree_round_trips_through_json() -> None:
    tree = small_tree()
    again = SearchTree.model_validate_json(tree.model_dump_json())
    assert again == tree
    assert again.children_of[1] == [3, 4]


def test_seeds_depend_on_query_seed_and_path_only() -> None:
    assert derive_seed(1, (0, 2)) == derive_seed(1, (0, 2))
    assert derive_seed(1, (0, 2)) != derive_seed(1, (2, 0))
    assert derive_seed(1, (0, 2)) != derive_seed(2, (0, 2))
    assert 0 <= derive_seed(7, ()) < 2**31


def test_reward_aggregations() -> None:
    assert aggregate_rewards([0.5, 0.8], "min") == 0.5
    assert aggregate_rewards([0.5, 0.8], "last") == 0.8
    assert aggregate_rewards([0.5, 0.8], "prod") == pytest.approx(0.4)
    assert aggregate_rewards([0.5, 0.8], "mean") == pytest.approx(0.65)
    assert aggregate_rewards([], "min") == 0.0
    with pytest.raises(ValueError):
        aggregate_rewards([1.0], "max")  # type: ignore[arg-type]


def test_vote_methods() -> None:
    tree = small_tree()
    eq = str.__eq__
    # weighted by min path reward: answer 1 -> 0.8, answer 2 -> 0.4
    assert vote(tree, [3, 5], eq, "weighted", "min").answer == "1"
    # by last reward answer 2 wins (0.9 > 0.8)
    assert vote(tree, [3, 5], eq, "weighted", "last").answer == "2"
    # majority tie breaks to the first class seen (lowest leaf id)
    result = vote(tree, [5, 3], eq, "majority")
    assert result.answer == "1" and result.counts == {"1": 1, "2": 1}
    assert vote(tree, [], eq).answer is None


def test_vote_groups_equivalent_answers() -> None:
    tree = small_tree()
    tree.node(5).answer = "1.0"
    same = lambda a, b: float(a) == float(b)  # noqa: E731
    result = vote(tree, [3, 5], same, "majority")
    assert result.counts == {"1": 2}


def test_chat_templates() -> None:
    msgs = [("system", "S"), ("user", "U")]
    assert render_chat(msgs, "chatml").endswith("<|im_start|>assistant\n")
    assert "<|start_header_id|>user" in render_chat(msgs, "llama3")
    assert render_chat(msgs, "plain").endswith("Assistant: ")
    with pytest.raises(ConfigError, match="chat template"):
        render_chat(msgs, "alpaca")
    assert join_steps(["a", "b"], "\n\n") == "a\n\nb\n\n"
    assert join_steps([], "\n\n") == ""
