"""REBASE: the softmax allocation and the layer-by-layer width budget."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import Step, random_script, run, table_script

from spex_graph.algorithms import Rebase, apportion, rebase_allocate, softmax_weights
from spex_graph.tree import NodeStatus

LR = "largest-remainder"


def test_allocate_hand_computed_case() -> None:
    # softmax(r / 0.2) of (0.9, 0.5, 0.1) = (e^4.5, e^2.5, e^0.5) / Σ = (0.8668, 0.1173, 0.0159);
    # × 10 = (8.668, 1.173, 0.159) → floors (8, 1, 0), the spare unit to the largest part .668.
    assert rebase_allocate({1: 0.9, 2: 0.5, 3: 0.1}, 10, 0.2, LR) == {1: 9, 2: 1, 3: 0}
    # The reference rule: ceil(10 · 0.8668) = 9, then ceil(1 · 12.18 / 13.83) = 1, then 0.
    assert rebase_allocate({1: 0.9, 2: 0.5, 3: 0.1}, 10, 0.2) == {1: 9, 2: 1, 3: 0}


def test_reference_rule_rounds_the_best_nodes_up() -> None:
    # Nearly equal rewards at a high temperature: 8 · 0.2518 = 2.01 → 3, then 5 · 0.334 → 2,
    # 3 · 0.5001 → 2, and the last node takes what is left (1); largest remainder gives 2 each.
    rewards = {1: 0.9, 2: 0.5, 3: 0.1, 4: 0.0}
    assert Rebase(temperature=100.0).allocate(rewards, 8) == {1: 3, 2: 2, 3: 2, 4: 1}
    assert Rebase(temperature=100.0, allocation=LR).allocate(rewards, 8) == dict.fromkeys(
        rewards, 2
    )
    # Hand-computed from e = exp(r / 0.2) = (e^4, e^3, e^1.5, e^1.5) (sums of the tails):
    # ceil(1000 · 0.6527) = 653; ceil(347 · 0.6913) = 240; ceil(107 · 0.5) = 54; then 53.
    assert rebase_allocate({1: 0.8, 2: 0.6, 3: 0.3, 4: 0.3}, 1000) == {
        1: 653,
        2: 240,
        3: 54,
        4: 53,
    }


def test_unknown_allocation_is_a_config_error() -> None:
    from spex_graph.errors import ConfigError

    with pytest.raises(ConfigError, match="allocation"):
        Rebase(allocation="round")


def test_softmax_proportions_at_temperature_0_2() -> None:
    rewards = {1: 0.8, 2: 0.6, 3: 0.3, 4: 0.3}
    exps = [math.exp(4.0), math.exp(3.0), math.exp(1.5), math.exp(1.5)]
    expected = [e / sum(exps) for e in exps]  # 0.6527, 0.2401, 0.0536, 0.0536
    weights = softmax_weights(rewards, 0.2)
    assert [weights[i] for i in (1, 2, 3, 4)] == pytest.approx(expected)
    # 1000 × p = 652.7, 240.1, 53.58, 53.58: floors sum to 998; the two spare units go
    # to .72 and then to the tied .58s, lower id first.
    assert rebase_allocate(rewards, 1000, 0.2, LR) == {1: 653, 2: 240, 3: 54, 4: 53}


def test_equal_rewards_split_evenly_ties_to_lower_id() -> None:
    assert rebase_allocate({9: 0.5, 2: 0.5, 5: 0.5}, 4) == {2: 2, 5: 1, 9: 1}
    assert rebase_allocate({9: 0.5, 2: 0.5, 5: 0.5}, 3) == {2: 1, 5: 1, 9: 1}


def test_allocate_edge_budgets() -> None:
    assert rebase_allocate({}, 5) == {}
    assert rebase_allocate({1: 0.3, 2: 0.9}, 0) == {1: 0, 2: 0}
    assert rebase_allocate({1: 0.3, 2: 0.9}, -3) == {1: 0, 2: 0}
    assert rebase_allocate({1: 0.0, 2: 1.0}, 1) == {1: 0, 2: 1}


def test_allocate_ignores_non_finite_rewards() -> None:
    out = rebase_allocate({1: float("nan"), 2: 0.0, 3: float("inf")}, 3)
    assert out == {1: 1, 2: 1, 3: 1}


def test_high_temperature_is_nearly_uniform_low_is_greedy() -> None:
    rewards = {1: 0.9, 2: 0.5, 3: 0.1, 4: 0.0}
    flat = Rebase(temperature=100.0, allocation=LR).allocate(rewards, 8)
    assert set(flat.values()) == {2}
    assert Rebase(temperature=0.01).allocate(rewards, 8) == {1: 8, 2: 0, 3: 0, 4: 0}


def test_apportion_all_zero_weights_split_evenly() -> None:
    assert apportion({3: 0.0, 1: 0.0}, 3) == {1: 2, 3: 1}


@settings(max_examples=200, deadline=None)
@given(
    rewards=st.dictionaries(st.integers(0, 500), st.floats(0.0, 1.0), max_size=40),
    budget=st.integers(-5, 200),
    temperature=st.floats(0.01, 10.0),
    allocation=st.sampled_from(["reference", LR]),
)
def test_allocate_sums_to_budget_never_negative_and_monotone(
    rewards: dict[int, float], budget: int, temperature: float, allocation: str
) -> None:
    out = rebase_allocate(rewards, budget, temperature, allocation)
    assert set(out) == set(rewards)
    assert all(n >= 0 for n in out.values())
    assert sum(out.values()) == (max(budget, 0) if rewards else 0)
    for a in rewards:
        for b in rewards:
            if rewards[a] > rewards[b] + 1e-6:
                assert out[a] >= out[b]


@pytest.mark.parametrize("seed", range(6))
def test_finished_leaves_reduce_width(seed: int) -> None:
    algo = Rebase(width=8, max_depth=6)
    result = run(algo, random_script(seed, p_end=0.3))
    assert sum(o.n for o in result.rounds[0]) == 8
    for orders, finished in zip(result.rounds, result.finished_before, strict=True):
        assert sum(o.n for o in orders) == 8 - finished
    # Every layer is given exactly the remaining width, so the search ends with `width` leaves.
    assert len(result.tree.leaves()) == 8
    assert result.state.stop_reason == "width"


def test_zero_allocations_are_pruned() -> None:
    table = {(i,): Step(f"s{i}", 1.0 if i < 2 else 0.0) for i in range(4)}
    result = run(Rebase(width=4, max_depth=2), table_script(table, Step("end", 0.5, "7")))
    first = result.states[0]
    assert first.frontier == [1, 2]
    assert first.allocation == {1: 2, 2: 2}
    assert [result.tree.node(i).status for i in (3, 4)] == [NodeStatus.PRUNED] * 2
    assert result.vote().answer == "7"


def test_terminal_children_free_width_in_the_next_layer() -> None:
    table = {
        (0,): Step("a", 0.9, "5"),
        (1,): Step("b", 0.9, "5"),
        (2,): Step("c", 0.5),
        (3,): Step("d", 0.5),
    }
    result = run(Rebase(width=4, max_depth=3), table_script(table, Step("e", 0.5, "6")))
    assert result.states[0].allocation == {3: 1, 4: 1}  # 4 − 2 finished, split evenly
    assert len(result.rounds) == 2
    assert result.vote().answer == "5"
