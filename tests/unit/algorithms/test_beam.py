"""Step-level beam search: the top-k selection and the beam bookkeeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import Step, random_script, run, table_script

from spex_graph.algorithms import Beam, ExpandOrder, select_top
from spex_graph.tree import NodeStatus


def test_select_top_orders_by_reward_then_id() -> None:
    rewards = {7: 0.5, 3: 0.9, 5: 0.5, 1: 0.1}
    assert select_top(rewards, 3) == [3, 5, 7]
    assert select_top(rewards, 10) == [3, 5, 7, 1]
    assert select_top(rewards, 0) == []
    assert select_top(rewards, -1) == []
    assert Beam().select(rewards, 1) == [3]


@settings(max_examples=100, deadline=None)
@given(
    rewards=st.dictionaries(st.integers(0, 100), st.floats(0.0, 1.0), max_size=30),
    k=st.integers(-2, 40),
)
def test_select_top_takes_the_best_k(rewards: dict[int, float], k: int) -> None:
    kept = select_top(rewards, k)
    assert len(kept) == max(0, min(k, len(rewards)))
    assert len(set(kept)) == len(kept)
    dropped = set(rewards) - set(kept)
    assert all(rewards[a] >= rewards[b] for a in kept for b in dropped)


def test_root_gets_width_times_expansion() -> None:
    result = run(Beam(width=3, expansion=2, max_depth=4), random_script(1))
    assert result.rounds[0] == [ExpandOrder(0, 6)]


@pytest.mark.parametrize("seed", range(5))
def test_keeps_width_minus_finished_beams_each_expanded(seed: int) -> None:
    algo = Beam(width=4, expansion=3, max_depth=6)
    result = run(algo, random_script(seed, p_end=0.25))
    for orders, finished in zip(result.rounds[1:], result.finished_before[1:], strict=True):
        assert 1 <= len(orders) <= 4 - finished
        assert all(o.n == 3 for o in orders)
    for state in result.states:
        if not state.done:
            assert state.allocation == dict.fromkeys(state.frontier, 3)


def test_keeps_the_highest_rewards_and_prunes_the_rest() -> None:
    rewards = [0.2, 0.9, 0.4, 0.9, 0.1, 0.6]
    table = {(i,): Step(f"s{i}", r) for i, r in enumerate(rewards)}
    result = run(Beam(width=3, expansion=2, max_depth=2), table_script(table, Step("e", 0.5, "1")))
    assert result.states[0].frontier == [2, 4, 6]  # rewards 0.9, 0.9, 0.6
    pruned = [n.id for n in result.tree.nodes if n.status == NodeStatus.PRUNED]
    assert pruned == [1, 3, 5]


def test_stops_once_width_leaves_are_finished() -> None:
    table = {(0,): Step("a", 0.9, "1"), (1,): Step("b", 0.9, "1")}
    result = run(Beam(width=2, expansion=2, max_depth=5), table_script(table, Step("x", 0.3)))
    assert result.state.stop_reason == "width"
    assert len(result.rounds) == 1
    assert [n.status for n in result.tree.nodes[3:]] == [NodeStatus.PRUNED] * 2
