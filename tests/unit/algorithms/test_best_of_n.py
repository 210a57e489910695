"""Best-of-N: one round of whole solutions, then a vote."""

from __future__ import annotations

from scripted import Step, run, table_script

from spex_graph.algorithms import BestOfN, ExpandOrder
from spex_graph.tree import NodeStatus

SAMPLES = {
    (0,): Step("a", 0.2, "A"),
    (1,): Step("b", 0.9, "B"),
    (2,): Step("c", 0.2, "A"),
    (3,): Step("d", 0.9, "B"),
    (4,): Step("e", 0.2, "A"),
    (5,): Step("f", 1.0, None),
}


def test_one_round_until_end() -> None:
    result = run(BestOfN(width=6), table_script(SAMPLES))
    assert result.rounds == [[ExpandOrder(0, 6, until_end=True)]]
    assert result.state.done and result.state.stop_reason == "complete"
    assert all(n.status == NodeStatus.TERMINAL for n in result.tree.nodes[1:])


def test_majority_versus_weighted() -> None:
    majority = run(BestOfN(width=6), table_script(SAMPLES))
    weighted = run(BestOfN(width=6, vote="weighted"), table_script(SAMPLES))
    # 3 × A (0.2 each) against 2 × B (0.9 each).
    assert majority.vote().answer == "A"
    assert majority.vote().counts == {"A": 3, "B": 2}
    assert weighted.vote().answer == "B"
    assert weighted.vote().weights["B"] == 1.8


def test_samples_without_an_answer_do_not_vote() -> None:
    result = run(BestOfN(width=6), table_script(SAMPLES))
    assert result.algo.candidates(result.tree, result.state) == [1, 2, 3, 4, 5]
