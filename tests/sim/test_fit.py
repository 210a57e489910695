"""Fitting the step-length variance split from recorded trees."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spex_graph.sim.fit import fit_step_split
from spex_graph.sim.presets import PAPER_WORKLOAD
from spex_graph.sim.workload import stable_hash


def _synthetic_recording(shared: float, problems: int = 40, width: int = 8) -> list[dict[str, Any]]:
    """Trees in `record-trees` format whose steps come from the workload with `shared`."""
    w = replace(PAPER_WORKLOAD, step_shared_fraction=shared, step_tokens_max=100_000)
    rows = []
    for q in range(problems):
        pid = f"sim-{q}"
        nodes: list[dict[str, Any]] = [{"id": 0, "parent": None, "depth": 0}]
        for s in range(width):
            parent = 0
            for step in w.sample_path(pid, stable_hash("fit", s) & 0x7FFFFFFF):
                nodes.append(
                    {
                        "id": len(nodes),
                        "parent": parent,
                        "depth": step.depth,
                        "completion_tokens": step.tokens,
                        "answer": step.answer,
                    }
                )
                parent = len(nodes) - 1
        rows.append({"id": pid, "nodes": nodes})
    return rows


@pytest.mark.parametrize("shared", [0.2, 0.7])
def test_the_fit_recovers_the_shared_fraction_it_was_generated_with(shared: float) -> None:
    fit = fit_step_split(_synthetic_recording(shared))
    assert fit["shared_fraction"] == pytest.approx(shared, abs=0.12)
    assert fit["log_sd"] == pytest.approx(PAPER_WORKLOAD.step_tokens_sigma, abs=0.1)
    assert fit["log_median"] == pytest.approx(PAPER_WORKLOAD.step_tokens_median, rel=0.15)
    assert fit["cv"] > 0.8 and fit["depth_mean"] > 1


def test_too_little_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="two"):
        fit_step_split([{"id": "a", "nodes": [{"id": 0, "parent": None, "depth": 0}]}])
