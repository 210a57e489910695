"""Adaptive early termination: the rule on scripted leaves."""

from __future__ import annotations

from spex_graph.policies.early_stop import answer_classes, prune_trailing, should_stop
from spex_graph.tree import NodeStatus, SearchTree


def tree_with_leaves(leaves: list[tuple[str, float]]) -> SearchTree:
    tree = SearchTree()
    for answer, reward in leaves:
        parent = tree.add_child(0, text="s", reward=1.0)
        leaf = tree.add_child(parent.id, text=f"\\boxed{{{answer}}}", reward=reward)
        leaf.status, leaf.answer = NodeStatus.TERMINAL, answer
    return tree


def test_classes_weigh_leaves_by_min_step_reward() -> None:
    tree = tree_with_leaves([("1", 0.9), ("2", 0.5), ("1", 0.8)])
    classes = answer_classes(tree, str.__eq__)
    assert classes[0][0] == "1" and sorted(classes[0][1]) == [0.8, 0.9]
    assert classes[1] == ("2", [0.5])


def test_settled_and_confident_answer_stops() -> None:
    classes = [("1", [0.95, 0.96, 0.97]), ("2", [0.3])]
    d = should_stop(classes, remaining=4, finished=4, min_finished=2, alpha=1.0, threshold=0.9)
    # W1 - W2 = 2.58 > 1.0 * 4 * 0.3 = 1.2 and median 0.96 > 0.9
    assert d.stop and d.reason == "settled"


def test_contested_answer_continues() -> None:
    classes = [("1", [0.95, 0.96]), ("2", [0.9, 0.92])]
    d = should_stop(classes, remaining=8, finished=4, min_finished=2, alpha=1.0, threshold=0.9)
    assert not d.stop and d.reason == "contested"


def test_low_confidence_continues_and_too_few_leaves_wait() -> None:
    classes = [("1", [0.6, 0.7, 0.65])]
    d = should_stop(classes, remaining=2, finished=3, min_finished=2, alpha=1.0, threshold=0.9)
    assert not d.stop and d.reason == "low confidence"
    d = should_stop(classes, remaining=2, finished=2, min_finished=2, alpha=1.0, threshold=0.5)
    assert not d.stop and d.reason == "too few leaves"


def test_unanimous_confident_answer_stops_even_with_width_left() -> None:
    d = should_stop(
        [("7", [0.99, 0.97, 0.98])],
        remaining=100,
        finished=3,
        min_finished=2,
        alpha=1.0,
        threshold=0.9,
    )
    assert d.stop


def test_prune_trailing_respects_margin_and_depth() -> None:
    tree = SearchTree()
    a = tree.add_child(0, text="a", reward=0.9)
    b = tree.add_child(0, text="b", reward=0.2)
    a1 = tree.add_child(a.id, text="a1", reward=0.9)
    b1 = tree.add_child(b.id, text="b1", reward=0.9)
    assert prune_trailing(tree, [a1.id, b1.id], margin=0.5, min_depth=2) == [b1.id]
    assert prune_trailing(tree, [a.id, b.id], margin=0.5, min_depth=2) == []
    assert prune_trailing(tree, [a1.id, b1.id], margin=0.8, min_depth=2) == []
