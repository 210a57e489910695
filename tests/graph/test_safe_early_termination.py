"""Exact mode + the safe early-termination rule gives the baseline's answer on every query.

The same random scripted worlds as the exactness test (random depth, endings,
answers, coarse rewards and latencies, on a virtual clock; a random share of
them skewed towards one answer, where early termination pays), for every
algorithm: the baseline runs to its end; SPEX runs with exact speculation and
`early_termination="safe"`. The answers must be identical, and the rule must
really fire. The paper's heuristic, on the same harness, does change answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from test_spex_exactness import world

from spex_graph import SearchContext, build_search_graph
from spex_graph.policies import SpexConfig
from spex_graph.sim.clock import run_virtual, virtual_now

ALGORITHMS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "rebase": lambda rng: {"width": rng.randint(1, 8)},
    "ets": lambda rng: {"width": rng.randint(1, 8)},
    "beam": lambda rng: {"width": rng.randint(1, 4), "algorithm_options": {"expansion": 2}},
    "bestfirst": lambda rng: {"width": rng.randint(1, 3), "algorithm_options": {"expansion": 2}},
    "mcts": lambda rng: {
        "width": rng.randint(1, 3),
        "algorithm_options": {"rollouts": rng.randint(2, 6)},
    },
    "bon": lambda rng: {"width": rng.randint(1, 8)},
}


def answer(algorithm: str, tree_seed: int, spex: SpexConfig) -> tuple[str | None, str, int]:
    """(answer, stop reason, tokens) of one search of a random world."""
    rng = random.Random(tree_seed * 7919)
    options = ALGORITHMS[algorithm](rng)
    if rng.random() < 0.5:  # majority voting too
        options.setdefault("algorithm_options", {})["vote"] = "majority"

    async def one() -> dict[str, Any]:
        backend, reward = world(tree_seed, skew=rng.choice([0.0, 0.8, 0.95, 1.0]))
        ctx = SearchContext.create(
            backend,
            reward,
            task="gsm8k",
            algorithm=algorithm,
            max_depth=4,
            seed=tree_seed,
            spex=spex,
            clock=virtual_now,
            **options,
        )
        return await build_search_graph().ainvoke({"question": f"t{tree_seed}"}, context=ctx)

    result = run_virtual(one())["result"]
    return result["answer"], result["stop_reason"], result["tokens_primary"]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_exact_mode_with_safe_early_termination_gives_the_baseline_answer(algorithm: str) -> None:
    trees, fired, saved = 200, 0, 0
    for tree_seed in range(trees):
        rng = random.Random(tree_seed)
        safe = SpexConfig(
            early_termination="safe",
            speculation=rng.random() < 0.7,
            budget=rng.random() < 0.5,
            lookahead_layers=rng.randint(1, 3),
        )
        base_answer, _, base_tokens = answer(algorithm, tree_seed, SpexConfig.baseline())
        safe_answer, reason, tokens = answer(algorithm, tree_seed, safe)
        assert safe_answer == base_answer, f"{algorithm} tree {tree_seed}: safe ET changed it"
        fired += reason == "early-stop"
        saved += base_tokens - tokens if reason == "early-stop" else 0
    if algorithm == "bon":  # one round: nothing to stop early
        assert fired == 0
    else:
        assert fired >= 10, f"safe ET fired on only {fired} of {trees} trees"
        assert saved > 0


def test_the_paper_rule_can_change_the_answer_on_the_same_trees() -> None:
    # With alpha and its confidence threshold at 0, the paper rule stops on any leader
    # of >= 2 leaves once width/4 leaves are in.
    paper = SpexConfig(
        speculation=False,
        budget=False,
        early_termination="paper",
        et_threshold_bfs=0.0,
        et_alpha_bfs=0.0,
    )
    assert any(
        answer("rebase", s, paper)[0] != answer("rebase", s, SpexConfig.baseline())[0]
        for s in range(200)
    )
