"""MCTS: UCT, selection with virtual visits, and a hand-computed rollout script."""

from __future__ import annotations

import itertools
import math

import pytest
from scripted import Step, random_script, run, table_script

from spex_graph.algorithms import ExpandOrder, Mcts, SearchState, select_leaf, uct_score
from spex_graph.tree import NodeStatus, SearchTree

# Depth-2 tree (max_depth=2, width=2). Ids as MCTS creates them:
#   1 (0,) r=.6          2 (1,) r=.8
#   5 (0,0) .3  6 (0,1) .2   3 (1,0) .5  4 (1,1) .9      (depth 2: terminal by the cap)
HAND = {
    (0,): Step("a", 0.6),
    (1,): Step("b", 0.8),
    (1, 0): Step("ba", 0.5, "x"),
    (1, 1): Step("bb", 0.9, "y"),
    (0, 0): Step("aa", 0.3, "y"),
    (0, 1): Step("ab", 0.2, "z"),
}
C = 1.4
LN2 = math.log(2)


def test_uct_score() -> None:
    assert uct_score(0.0, 0, 5, C) == math.inf
    assert uct_score(0.9, 1, 2, C) == pytest.approx(0.9 + C * math.sqrt(LN2))
    assert uct_score(1.0, 4, 1, C) == pytest.approx(0.25)  # ln 1 = 0: no exploration
    assert uct_score(1.2, 2, 0, 0.0) == pytest.approx(0.6)


def test_two_rollouts_hand_computed() -> None:
    result = run(Mcts(rollouts=2, width=2, max_depth=2, c_uct=C), table_script(HAND))
    # Rollout 1: expand root, continue into the best child 2 (.8), expand it, best leaf 4 (.9).
    # Rollout 2: root's unvisited child 1 goes first (UCT = ∞); expand it, best leaf 5 (.3).
    assert result.rounds == [
        [ExpandOrder(0, 2)],
        [ExpandOrder(2, 2)],
        [ExpandOrder(1, 2)],
    ]
    state = result.state
    assert state.visits == {0: 2, 2: 1, 4: 1, 1: 1, 5: 1}
    assert state.value_sum == pytest.approx({0: 1.2, 2: 0.9, 4: 0.9, 1: 0.3, 5: 0.3})
    assert state.rollouts_done == 2 and state.stop_reason == "rollouts"
    algo = Mcts(c_uct=C)
    assert algo.uct(result.tree, state, 1) == pytest.approx(0.3 + C * math.sqrt(LN2))
    assert algo.uct(result.tree, state, 2) == pytest.approx(0.9 + C * math.sqrt(LN2))
    assert algo.candidates(result.tree, state) == [3, 4, 5, 6]


def test_third_rollout_reaches_a_terminal_node_without_new_work() -> None:
    result = run(Mcts(rollouts=3, width=2, max_depth=2, c_uct=C), table_script(HAND))
    # UCT(2) = 2.07 > UCT(1) = 1.47, then 2's unvisited child 3 (terminal): re-count it.
    assert len(result.rounds) == 3 and result.generated == 6
    assert result.state.visits == {0: 3, 2: 2, 4: 1, 1: 1, 5: 1, 3: 1}
    assert result.state.value_sum[0] == pytest.approx(1.7)
    assert result.state.value_sum[2] == pytest.approx(1.4)
    assert result.state.rollouts_done == 3


def test_select_leaf_with_virtual_visits() -> None:
    result = run(Mcts(rollouts=2, width=2, max_depth=2, c_uct=C), table_script(HAND))
    tree, state = result.tree, result.state
    assert select_leaf(tree, state, C) == 3
    # Five virtual visits on 2: UCT(2) = 0.9/6 + 1.4·sqrt(ln 2 / 6) = 0.63 < UCT(1) = 1.47.
    assert select_leaf(tree, state, C, virtual_visits={2: 5}) == 6
    assert Mcts(c_uct=C).select_leaf(tree, state, {2: 5}) == 6
    assert state.visits[2] == 1  # pure: the real statistics are untouched


def test_many_rollouts_on_a_small_tree_terminate() -> None:
    result = run(Mcts(rollouts=50, width=2, max_depth=2), table_script(HAND))
    assert result.generated == 6
    assert result.state.rollouts_done == 50
    assert result.state.visits[0] == 50


def test_min_value_back_propagates_the_weakest_step() -> None:
    result = run(Mcts(rollouts=1, width=2, max_depth=2, value="min"), table_script(HAND))
    assert result.state.value_sum[0] == pytest.approx(0.8)  # min(.8, .9)


@pytest.mark.parametrize("seed", range(4))
def test_rollout_and_node_caps(seed: int) -> None:
    algo = Mcts(rollouts=6, width=3, max_depth=5)
    result = run(algo, random_script(seed, p_end=0.2))
    assert result.state.rollouts_done == 6
    assert len(result.rounds) <= 6 * 5
    assert result.generated <= 6 * 5 * 3
    assert result.state.visits[0] == 6


def test_rollout_follows_the_best_child() -> None:
    result = run(Mcts(rollouts=1, width=3, max_depth=4), random_script(9, p_end=0.0))
    parents = [orders[0].node_id for orders in result.rounds]
    for parent, child in itertools.pairwise(parents):
        kids = result.tree.children(parent)
        best = max(kids, key=lambda n: (n.reward or 0.0, -n.id))
        assert child == best.id


def test_failed_expansion_prunes_the_cursor() -> None:
    table = {(0,): Step("a", 0.9), (1,): Step("b", 0.1, "7")}
    result = run(Mcts(rollouts=4, width=2, max_depth=3), table_script(table))
    assert result.tree.node(1).status == NodeStatus.PRUNED
    assert result.state.done
    assert result.vote().answer == "7"


def test_start_state() -> None:
    state = Mcts().start(SearchTree())
    assert state == SearchState(cursor=0)
    assert Mcts(width=3).propose(SearchTree(), state) == [ExpandOrder(0, 3)]
