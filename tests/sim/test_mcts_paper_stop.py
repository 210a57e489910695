"""The paper's early-termination rule on MCTS: its gate counts rollouts
(`AlgorithmTraits.rollouts`), and on the artifact preset it stops some queries."""

from __future__ import annotations

from typing import Any

from spex_graph.policies.config import SpexConfig
from spex_graph.sim import run_queries, run_virtual, sim_context


def _results(early_termination: bool | str) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        spex = SpexConfig(speculation=False, budget=False, early_termination=early_termination)
        ctx, _ = sim_context("mcts", width=4, preset="artifact", spex=spex)
        assert ctx.algorithm.traits.rollouts == 10
        return await run_queries(ctx, ctx.task.load(16), concurrency=16)

    return run_virtual(main())


def test_the_paper_rule_stops_some_mcts_queries_sooner() -> None:
    full, stopped = _results(False), _results("paper")
    early = [i for i, r in enumerate(stopped) if r["stop_reason"] == "early-stop"]
    assert early and len(early) < len(stopped)  # 5 of these 16 on the artifact preset
    assert all(full[i]["stop_reason"] != "early-stop" for i in early)
    assert all(stopped[i]["nodes"] < full[i]["nodes"] for i in early)
