"""ETS: semantic keys, coverage and the KV-sharing term of the allocation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import random_script, run

from spex_graph.algorithms import Ets, ets_allocate, rebase_allocate, step_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("x = 1,000.0", "so x is 1000"),
        ("So x = 5.", "Therefore, x equals 5"),
        ("Step 2: 3 + 4 = 7", "3 + 4 = 7"),
        ("Factor the quadratic.", "factor   the QUADRATIC"),
        ("first we expand\nthen 2x = 10", "2x=10"),
        ("0.50 of it", "0.5 of it"),
    ],
)
def test_step_key_equal(a: str, b: str) -> None:
    assert step_key(a) == step_key(b)


def test_step_key_values() -> None:
    assert step_key("Step 2: 3 + 4 = 7") == "num:3 4 7"
    assert step_key("Factor the quadratic.") == "txt:factor the quadratic"
    assert step_key("  \n ") == "txt:"
    assert step_key("x = 5") != step_key("x = 6")


def test_coverage_keeps_a_cluster_that_rebase_drops() -> None:
    rewards = {1: 0.9, 2: 0.88, 3: 0.86, 4: 0.4}
    clusters = {1: "A", 2: "A", 3: "A", 4: "B"}
    assert rebase_allocate(rewards, 8)[4] == 0
    out = ets_allocate(rewards, 8, clusters=clusters, coverage_floor=0.3)
    assert out[4] == 1 and sum(out.values()) == 8
    # Below the floor the odd cluster gets no guarantee.
    assert ets_allocate(rewards, 8, clusters=clusters, coverage_floor=0.5)[4] == 0


def test_kv_term_prefers_siblings_of_kept_nodes() -> None:
    rewards = {1: 0.9, 2: 0.85, 3: 0.8}
    clusters = dict.fromkeys(rewards, "A")
    paths = {1: [10, 1], 2: [10, 2], 3: [11, 3]}  # 1, 2 share parent 10; 3 needs parent 11
    # Shares 4·p = 1.68, 1.31, 1.02: node 3 gains 1.02 − 0.6·2 < 0 once 1 is kept.
    shared = ets_allocate(rewards, 4, kv_weight=0.6, clusters=clusters, paths=paths)
    assert shared == {1: 2, 2: 2, 3: 0}
    # Without the shared prefix every node costs 1 and node 3 stays.
    assert ets_allocate(rewards, 4, kv_weight=0.6, clusters=clusters) == {1: 2, 2: 1, 3: 1}


def test_no_kv_cost_and_no_coverage_keeps_every_node() -> None:
    rewards = {1: 0.9, 2: 0.1, 3: 0.1}
    assert rebase_allocate(rewards, 4) == {1: 4, 2: 0, 3: 0}
    assert ets_allocate(rewards, 4, kv_weight=0.0, coverage_floor=2.0) == {1: 2, 2: 1, 3: 1}


def test_all_below_floor_keeps_the_best_node() -> None:
    out = ets_allocate({1: 0.1, 2: 0.1, 3: 0.05}, 5, kv_weight=10.0)
    assert out == {1: 5, 2: 0, 3: 0}


def test_budget_smaller_than_clusters_keeps_the_best_clusters() -> None:
    assert ets_allocate({1: 0.9, 2: 0.8, 3: 0.7}, 2) == {1: 1, 2: 1, 3: 0}
    assert ets_allocate({1: 0.9}, 0) == {1: 0}
    assert ets_allocate({}, 3) == {}


@settings(max_examples=200, deadline=None)
@given(
    rewards=st.dictionaries(st.integers(0, 60), st.floats(0.0, 1.0), max_size=25),
    budget=st.integers(-3, 64),
    kv_weight=st.floats(0.0, 5.0),
    floor=st.floats(0.0, 1.5),
    n_clusters=st.integers(1, 5),
)
def test_allocation_sums_to_budget(
    rewards: dict[int, float], budget: int, kv_weight: float, floor: float, n_clusters: int
) -> None:
    clusters = {i: f"c{i % n_clusters}" for i in rewards}
    paths = {i: [1000 + i % 3, i] for i in rewards}
    out = ets_allocate(
        rewards,
        budget,
        kv_weight=kv_weight,
        coverage_floor=floor,
        clusters=clusters,
        paths=paths,
    )
    assert set(out) == set(rewards)
    assert all(n >= 0 for n in out.values())
    assert sum(out.values()) == (max(budget, 0) if rewards else 0)
    if rewards and budget > 0:
        assert out[max(rewards, key=lambda i: (rewards[i], -i))] >= 1


@pytest.mark.parametrize("seed", range(4))
def test_layers_share_the_remaining_width(seed: int) -> None:
    result = run(Ets(width=8, max_depth=6), random_script(seed))
    for orders, finished in zip(result.rounds, result.finished_before, strict=True):
        assert sum(o.n for o in orders) == 8 - finished
    assert result.state.stop_reason == "width"
