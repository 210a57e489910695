"""Behaviour every search algorithm shares, checked over scripted trees."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import Run, Step, constant_script, dominant_script, random_script, run

from spex_graph.algorithms import (
    Beam,
    BestFirst,
    BestOfN,
    Ets,
    Mcts,
    Rebase,
    SearchAlgorithm,
    SearchState,
    make_algorithm,
)
from spex_graph.errors import ConfigError
from spex_graph.tree import NodeStatus

Factory = Callable[..., SearchAlgorithm]

FACTORIES: dict[str, Factory] = {
    "rebase": lambda **kw: Rebase(**{"width": 8, "max_depth": 6, **kw}),
    "beam": lambda **kw: Beam(**{"width": 4, "expansion": 3, "max_depth": 6, **kw}),
    "ets": lambda **kw: Ets(**{"width": 8, "max_depth": 6, **kw}),
    "bestfirst": lambda **kw: BestFirst(**{"width": 3, "expansion": 3, "max_depth": 6, **kw}),
    "bestfirst-global": lambda **kw: BestFirst(
        **{"width": 3, "expansion": 3, "max_depth": 6, "mode": "global", **kw}
    ),
    "mcts": lambda **kw: Mcts(**{"rollouts": 8, "width": 3, "max_depth": 6, **kw}),
    "bon": lambda **kw: BestOfN(**{"width": 8, **kw}),
}
NAMES = list(FACTORIES)


def node_bound(algo: SearchAlgorithm) -> int:
    """The most nodes the algorithm may generate, from its documented caps."""
    depth = int(getattr(algo, "max_depth", 1))
    if isinstance(algo, Rebase | Ets):
        return algo.width * depth
    if isinstance(algo, Beam):
        return algo.width * algo.expansion * depth
    if isinstance(algo, BestFirst):
        return algo.node_budget
    if isinstance(algo, Mcts):
        return algo.rollouts * depth * algo.width
    return algo.width


def check_finished(result: Run) -> None:
    """The run finished cleanly: done, capped, every leaf terminal or pruned."""
    algo, tree, state = result.algo, result.tree, result.state
    assert state.done and state.stop_reason
    assert result.generated <= node_bound(algo)
    depth = int(getattr(algo, "max_depth", 1))
    assert all(n.depth <= depth for n in tree.nodes)
    for node in tree.nodes[1:]:
        if not tree.children_of.get(node.id):
            assert node.status in (NodeStatus.TERMINAL, NodeStatus.PRUNED), node
        if node.status == NodeStatus.PRUNED:
            assert not tree.children_of.get(node.id) or isinstance(algo, Mcts)
    for leaf in algo.candidates(tree, state):
        assert tree.node(leaf).status == NodeStatus.TERMINAL
        assert tree.node(leaf).answer is not None
    # Finished means finished: a late observe changes nothing.
    assert algo.observe(tree, state, []) == state
    assert algo.propose(tree, state) == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_runs_to_completion_within_caps(name: str, seed: int) -> None:
    result = run(FACTORIES[name](), random_script(seed))
    check_finished(result)
    assert isinstance(result.algo, SearchAlgorithm)


@pytest.mark.parametrize("name", NAMES)
def test_dominant_answer_wins(name: str) -> None:
    result = run(FACTORIES[name](), dominant_script("42"))
    check_finished(result)
    assert result.vote().answer == "42"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name: str) -> None:
    first = run(FACTORIES[name](), random_script(7))
    second = run(FACTORIES[name](), random_script(7))
    assert first.tree.model_dump() == second.tree.model_dump()
    assert first.state == second.state
    assert first.rounds == second.rounds


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trips_through_json(name: str) -> None:
    result = run(FACTORIES[name](), random_script(3))
    for state in result.states:
        assert SearchState.model_validate_json(state.model_dump_json()) == state


@pytest.mark.parametrize("name", NAMES)
def test_all_rewards_equal(name: str) -> None:
    result = run(FACTORIES[name](), constant_script(0.5))
    check_finished(result)
    assert result.vote().answer == "7"


@pytest.mark.parametrize("name", NAMES)
def test_root_with_only_terminal_children(name: str) -> None:
    result = run(FACTORIES[name](), constant_script(0.5, end_depth=1))
    check_finished(result)
    assert len(result.rounds) == 1
    assert len(result.algo.candidates(result.tree, result.state)) == result.generated


@pytest.mark.parametrize("name", NAMES)
def test_layer_where_every_child_is_terminal(name: str) -> None:
    result = run(FACTORIES[name](), constant_script(0.5, end_depth=2))
    check_finished(result)
    assert max(n.depth for n in result.tree.nodes) <= 2
    assert all(n.status == NodeStatus.TERMINAL for n in result.tree.nodes if n.depth == 2)


@pytest.mark.parametrize("name", NAMES)
def test_width_one(name: str) -> None:
    result = run(FACTORIES[name](width=1), random_script(4))
    check_finished(result)
    assert all(sum(o.n for o in orders) >= 1 for orders in result.rounds)


@pytest.mark.parametrize("name", NAMES)
def test_rewards_zero_and_one(name: str) -> None:
    def script(path: tuple[int, ...], until_end: bool) -> Step:
        good = path[0] % 2 == 0
        ends = until_end or len(path) >= 2
        return Step("x", 1.0 if good else 0.0, ("one" if good else "zero") if ends else None)

    algo = FACTORIES[name]()
    if isinstance(algo, BestOfN):
        algo = FACTORIES[name](vote="weighted")
    result = run(algo, script)
    check_finished(result)
    assert result.vote().answer == "one"


@pytest.mark.parametrize("name", NAMES)
def test_depth_cap_one(name: str) -> None:
    kw = {} if name == "bon" else {"max_depth": 1}
    result = run(FACTORIES[name](**kw), random_script(5, p_end=0.0))
    check_finished(result)
    assert len(result.rounds) == 1


@pytest.mark.parametrize("name", [n for n in NAMES if n != "bon"])
def test_depth_cap_holds_when_the_driver_ignores_it(name: str) -> None:
    result = run(FACTORIES[name](max_depth=2), random_script(6, p_end=0.0), max_depth=99)
    check_finished(result)
    assert all(n.status == NodeStatus.TERMINAL for n in result.tree.nodes if n.depth == 2)


@pytest.mark.parametrize("name", NAMES)
def test_engine_returning_no_children(name: str) -> None:
    result = run(FACTORIES[name](), lambda path, until_end: None)
    assert result.state.done
    assert result.generated == 0


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    seed=st.integers(0, 10_000),
    p_end=st.floats(0.0, 1.0),
    width=st.integers(1, 6),
    depth=st.integers(1, 6),
)
def test_terminates_within_bound_on_random_scripts(
    name: str, seed: int, p_end: float, width: int, depth: int
) -> None:
    kw: dict[str, object] = {"width": width}
    if name != "bon":
        kw["max_depth"] = depth
    result = run(FACTORIES[name](**kw), random_script(seed, p_end=p_end))
    check_finished(result)


# ----------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("rebase", Rebase),
        ("beam", Beam),
        ("ets", Ets),
        ("bestfirst", BestFirst),
        ("best-first", BestFirst),
        ("mcts", Mcts),
        ("bon", BestOfN),
        ("Best_of_N", BestOfN),
    ],
)
def test_make_algorithm_by_name(name: str, cls: type) -> None:
    algo = make_algorithm(name, 3, max_depth=7)
    assert isinstance(algo, cls)
    assert algo.width == 3
    assert algo.max_depth == 7  # type: ignore[attr-defined]
    assert make_algorithm(name).width == cls().width


def test_make_algorithm_passes_knobs() -> None:
    algo = make_algorithm("rebase", temperature=0.5, vote="majority")
    assert isinstance(algo, Rebase) and algo.temperature == 0.5 and algo.vote == "majority"


def test_make_algorithm_unknown_name_lists_names() -> None:
    with pytest.raises(ConfigError) as err:
        make_algorithm("dfs")
    msg = str(err.value)
    assert "\n" not in msg
    for name in ("rebase", "beam", "ets", "bestfirst", "mcts", "bon"):
        assert name in msg


def test_make_algorithm_unknown_option() -> None:
    with pytest.raises(ConfigError, match="temprature"):
        make_algorithm("rebase", temprature=0.3)


@pytest.mark.parametrize(
    ("name", "knobs", "knob"),
    [
        ("rebase", {"width": 0}, "width"),
        ("rebase", {"width": True}, "width"),
        ("rebase", {"width": 2.5}, "width"),
        ("rebase", {"temperature": 0.0}, "temperature"),
        ("rebase", {"temperature": float("nan")}, "temperature"),
        ("rebase", {"aggregation": "sum"}, "aggregation"),
        ("rebase", {"max_depth": 0}, "max_depth"),
        ("beam", {"expansion": 0}, "expansion"),
        ("ets", {"kv_weight": -0.1}, "kv_weight"),
        ("ets", {"coverage_floor": -1.0}, "coverage_floor"),
        ("bestfirst", {"mode": "dfs"}, "mode"),
        ("bestfirst", {"max_nodes": 0}, "max_nodes"),
        ("mcts", {"rollouts": 0}, "rollouts"),
        ("mcts", {"c_uct": -1.0}, "c_uct"),
        ("mcts", {"value": "max"}, "value"),
        ("bon", {"vote": "plurality"}, "vote"),
    ],
)
def test_invalid_knobs_raise_config_error(name: str, knobs: dict[str, object], knob: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_algorithm(name, **knobs)
    msg = str(err.value)
    assert knob in msg and "\n" not in msg
