"""Where a node's child count is fixed (beam, best-first, MCTS), speculation never
launches children beyond it: the search could never ask for them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from helpers import run_sim_queries

from spex_graph.algorithms import make_algorithm
from spex_graph.algorithms.base import AlgorithmTraits
from spex_graph.policies.config import SpexConfig

FAN_OUT = {"beam": "expansion", "bestfirst": "expansion", "mcts": "width"}


@pytest.mark.parametrize("algorithm", sorted(FAN_OUT))
@pytest.mark.parametrize("fixed", [True, False])
def test_no_speculative_child_beyond_a_fixed_fan_out(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, fixed: bool
) -> None:
    """fixed=False: the trait switched off (the widening hedge back), so the test
    shows it can fail."""
    cls = type(make_algorithm(algorithm, width=4))
    traits = cls.traits
    assert isinstance(traits, property) and traits.fget is not None
    if not fixed:
        getter = traits.fget

        def unfixed(self: Any) -> AlgorithmTraits:
            return dataclasses.replace(getter(self), fixed_fan_out=False)

        monkeypatch.setattr(cls, "traits", property(unfixed))
    options = {"rollouts": 4} if algorithm == "mcts" else {}
    results, sessions = run_sim_queries(
        algorithm, 2, width=4, preset="artifact", spex=SpexConfig(), algorithm_options=options
    )
    assert all(r["answer"] is not None for r in results)
    fan_out = getattr(make_algorithm(algorithm, width=4), FAN_OUT[algorithm])
    indices = [
        int(r.key.rsplit("/", 1)[-1])
        for s in sessions
        for r in s.records
        if r.kind == "policy" and r.speculative
    ]
    assert indices  # it speculated
    beyond = [i for i in indices if i >= fan_out]
    assert (not beyond) if fixed else beyond
