"""Incremental answer grouping: same classes as a one-shot vote, O(new leaves) per check."""

from __future__ import annotations

import random

from spex_graph.policies.early_stop import answer_classes
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import AnswerTally, TreeTally, vote


class CountingEquivalence:
    """Equivalence as in math grading (numbers compare by value), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, a: str, b: str) -> bool:
        self.calls += 1
        try:
            return float(a) == float(b)
        except ValueError:
            return a.strip() == b.strip()


def grow(tree: SearchTree, rng: random.Random, leaves: int) -> None:
    """Add `leaves` answered leaves (and some unanswered nodes) below random parents."""
    answers = ["1", "1.0", "2", " 2", "3", "x", "4.00"]
    for _ in range(leaves):
        parent = rng.choice([n.id for n in tree.nodes if n.status == NodeStatus.ACTIVE])
        mid = tree.add_child(parent, text="step", reward=round(rng.random(), 2))
        leaf = tree.add_child(mid.id, text="end", reward=round(rng.random(), 2))
        leaf.status, leaf.answer = NodeStatus.TERMINAL, rng.choice(answers)


def test_incremental_tally_equals_a_fresh_vote_after_every_check() -> None:
    rng = random.Random(3)
    tree = SearchTree()
    tracker = TreeTally(CountingEquivalence(), ("min", "last"))
    for _ in range(20):
        grow(tree, rng, rng.randint(0, 5))
        tally = tracker.update(tree)
        leaves = [n.id for n in tree.leaves()]
        for method in ("weighted", "majority", "best"):
            for aggregation in ("min", "last"):
                fresh = vote(tree, leaves, CountingEquivalence(), method, aggregation)  # type: ignore[arg-type]
                if not leaves:
                    assert not tally.classes
                    continue
                winner = tally.ranked(method, aggregation)[0]  # type: ignore[arg-type]
                assert winner.answer == fresh.answer
                assert {c.answer: c.count for c in tally.classes} == fresh.counts
    assert len(tracker.tally) == len(tree.leaves())


def test_a_check_costs_equivalence_calls_for_its_new_leaves_only() -> None:
    rng = random.Random(0)
    tree = SearchTree()
    # every answer a new string ("3.000", "3.0000000", ...) for one of 5 values
    for _ in range(300):
        mid = tree.add_child(0, text="step", reward=0.5)
        leaf = tree.add_child(mid.id, text="end", reward=round(rng.random(), 2))
        value, zeros = rng.randint(0, 4), rng.randint(1, 10**6)
        leaf.status, leaf.answer = NodeStatus.TERMINAL, f"{value}.{'0' * (zeros % 40 + 1)}"
    first = len(tree)
    equivalent = CountingEquivalence()
    tracker = TreeTally(equivalent, ("min",))
    tracker.update(tree.model_copy(update={"nodes": tree.nodes[: first - 20]}))
    before = equivalent.calls
    tracker.update(tree)  # 10 new leaves (and 10 inner nodes)
    per_check = equivalent.calls - before
    assert 0 < per_check <= 10 * 5  # each new leaf against at most the 5 classes
    tracker.update(tree)
    assert equivalent.calls == before + per_check  # nothing new: no work
    regroup = CountingEquivalence()
    answer_classes(tree, regroup)
    assert regroup.calls > 10 * per_check  # what every check cost before


def test_a_tree_that_does_not_extend_the_last_one_is_retallied() -> None:
    rng = random.Random(1)
    big, small = SearchTree(), SearchTree()
    grow(big, rng, 10)
    grow(small, rng, 3)
    tracker = TreeTally(str.__eq__, ("min",))
    tracker.update(big)
    assert len(tracker.update(small)) == 3


def test_tally_flags_rewards_outside_the_unit_interval() -> None:
    tree = SearchTree()
    tracker = TreeTally(str.__eq__, ("min",))
    leaf = tree.add_child(0, text="a", reward=0.5)
    leaf.status, leaf.answer = NodeStatus.TERMINAL, "1"
    assert tracker.update(tree) and tracker.rewards_in_unit_range
    tree.add_child(0, text="b", reward=1.5)
    tracker.update(tree)
    assert not tracker.rewards_in_unit_range


def test_same_string_lands_in_the_same_class_even_when_equivalence_is_not_transitive() -> None:
    # "a~b" and "b~c" but not "a~c": a leaf's class is the first one that matches.
    pairs = {("a", "b"), ("b", "c")}
    tally = AnswerTally(lambda x, y: (x, y) in pairs or (y, x) in pairs)
    for i, answer in enumerate(["c", "a", "b", "b", "c"]):
        tally.add(i, answer, [1.0])
    assert [(c.answer, c.count) for c in tally.classes] == [("c", 4), ("a", 1)]
