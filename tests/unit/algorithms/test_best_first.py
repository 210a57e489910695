"""Best-first: ToT BFS (keep b per layer) and the global priority-queue mode."""

from __future__ import annotations

import pytest
from scripted import Step, random_script, run, table_script

from spex_graph.algorithms import BestFirst, ExpandOrder
from spex_graph.tree import NodeStatus

# Root → A (0.9), B (0.6); A's children score badly; everything else is mediocre.
BACKTRACK = {
    (0,): Step("A", 0.9),
    (1,): Step("B", 0.6),
    (0, 0): Step("A1", 0.1),
    (0, 1): Step("A2", 0.1),
}
FILLER = Step("z", 0.05)


def test_bfs_keeps_width_states_per_layer() -> None:
    algo = BestFirst(width=2, expansion=3, max_depth=4)
    result = run(algo, random_script(2, p_end=0.1))
    assert result.rounds[0] == [ExpandOrder(0, 3)]
    for orders in result.rounds[1:]:
        assert len(orders) <= 2 and all(o.n == 3 for o in orders)
    for depth in range(1, 4):
        expanded = [
            n for n in result.tree.nodes if n.depth == depth and result.tree.children_of.get(n.id)
        ]
        assert len(expanded) <= 2
    assert result.state.stop_reason in ("depth", "complete")


def test_bfs_prunes_the_rest_of_the_layer() -> None:
    result = run(BestFirst(width=1, expansion=2, max_depth=3), table_script(BACKTRACK, FILLER))
    assert result.rounds[1] == [ExpandOrder(1, 2)]
    assert result.rounds[2] == [ExpandOrder(3, 2)]  # stays below A: B was pruned
    assert result.tree.node(2).status == NodeStatus.PRUNED


def test_global_backtracks_to_a_shallow_node() -> None:
    algo = BestFirst(width=1, expansion=2, max_depth=3, mode="global")
    result = run(algo, table_script(BACKTRACK, FILLER))
    assert result.rounds[1] == [ExpandOrder(1, 2)]
    assert result.rounds[2] == [ExpandOrder(2, 2)]  # B (0.6) beats A's children (0.1)
    assert result.states[1].open_nodes == [3, 4]


def test_global_stops_at_width_finished_leaves() -> None:
    table = {(0,): Step("a", 0.5, "1"), (1,): Step("b", 0.4, "1"), (2,): Step("c", 0.9)}
    algo = BestFirst(width=2, expansion=3, max_depth=6, mode="global")
    result = run(algo, table_script(table, FILLER))
    assert result.state.stop_reason == "width"
    assert len(result.rounds) == 1
    assert result.tree.node(3).status == NodeStatus.PRUNED  # left in the open list
    assert result.state.open_nodes == []
    # BFS ignores finished leaves and goes on below the live state.
    bfs = run(BestFirst(width=2, expansion=3, max_depth=2), table_script(table, FILLER))
    assert bfs.rounds[1] == [ExpandOrder(3, 3)]


@pytest.mark.parametrize("mode", ["bfs", "global"])
@pytest.mark.parametrize("max_nodes", [1, 5, 10])
def test_node_budget_is_never_exceeded(mode: str, max_nodes: int) -> None:
    algo = BestFirst(width=3, expansion=3, max_depth=8, mode=mode, max_nodes=max_nodes)  # type: ignore[arg-type]
    result = run(algo, random_script(3, p_end=0.05))
    assert result.generated <= max_nodes
    assert result.state.done


def test_default_node_budget() -> None:
    assert BestFirst(width=5, expansion=4, max_depth=3).node_budget == 60
    assert BestFirst(max_nodes=7).node_budget == 7
