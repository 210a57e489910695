"""The budget waits for the policy engine's first load report, and never forever."""

from __future__ import annotations

import dataclasses
from typing import Any

from spex_graph import build_search_graph
from spex_graph.sim import run_virtual, sim_context


def _spex_search(load_report: bool) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        ctx, _ = sim_context("rebase", width=8, spex=True)
        budget = ctx.dispatcher.budget
        assert budget is not None and budget.awaiting_load_report  # the sim reports load
        if not load_report:

            async def no_report() -> None:  # e.g. an SGLang build without /v1/loads
                return None

            ctx.policy.load = no_report  # type: ignore[method-assign]
        problem = ctx.task.load(1)[0]
        out = await build_search_graph().ainvoke(
            {"problem": dataclasses.asdict(problem), "query_id": problem.id}, context=ctx
        )
        assert not budget.awaiting_load_report
        return dict(out["result"])

    return run_virtual(main())


def test_speculation_starts_once_the_engine_reports_its_load() -> None:
    result = _spex_search(load_report=True)
    assert result["tokens_speculative_used"] > 0


def test_an_engine_without_load_reports_does_not_keep_speculation_off() -> None:
    result = _spex_search(load_report=False)
    assert result["tokens_speculative_used"] > 0
