"""A query alone in the budget speculates deeper (`SpexConfig.solo_lookahead_layers`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from spex_graph.policies.budget import BudgetController
from spex_graph.policies.config import SpexConfig
from spex_graph.policies.speculation import Speculator
from spex_graph.sim import run_queries, run_virtual, sim_context


def _depth(config: SpexConfig, budget: BudgetController | None) -> tuple[int, float]:
    stub: Any = SimpleNamespace(
        config=config, ctx=SimpleNamespace(dispatcher=SimpleNamespace(budget=budget))
    )
    return Speculator._reach(stub)


def test_deeper_only_while_no_other_query_is_registered() -> None:
    budget = BudgetController()
    budget.register("a", 16)
    assert _depth(SpexConfig(), budget) == (5, 4.0)
    budget.register("b", 16)
    assert _depth(SpexConfig(), budget) == (3, 2.0)  # shared: the reference's depth
    budget.unregister("b")
    assert _depth(SpexConfig(), budget) == (5, 4.0)
    assert _depth(SpexConfig(solo_lookahead_layers=None), budget) == (3, 2.0)
    assert _depth(SpexConfig(lookahead_layers=8), budget) == (8, 4.0)  # never shallower
    assert _depth(SpexConfig(budget=False), None) == (3, 2.0)  # no budget: no one to ask


def _mean_latency(spex: SpexConfig, queries: int = 6) -> tuple[float, list[Any]]:
    async def main() -> list[dict[str, Any]]:
        ctx, _ = sim_context("rebase", width=16, preset="artifact", spex=spex)
        return await run_queries(ctx, ctx.task.load(queries), concurrency=1)

    results = run_virtual(main())
    return sum(r["latency_s"] for r in results) / len(results), [r["answer"] for r in results]


def test_a_lone_query_gains_from_the_deeper_lookahead_with_the_same_answers() -> None:
    solo, solo_answers = _mean_latency(SpexConfig())
    shared, shared_answers = _mean_latency(SpexConfig(solo_lookahead_layers=None))
    baseline, baseline_answers = _mean_latency(SpexConfig.baseline())
    assert solo_answers == shared_answers == baseline_answers  # exact mode
    assert solo < shared < baseline
