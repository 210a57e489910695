"""Whole searches through the LangGraph graph on the simulated engine and virtual clock."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from helpers import run_sim_queries

from spex_graph import SearchContext, SearchTree, build_search_graph
from spex_graph.policies.config import SpexConfig
from spex_graph.sim import (
    H200_7B,
    MATH_LIKE,
    Recording,
    RecordingBackend,
    RecordingReward,
    ReplayBackend,
    ReplayReward,
    SimBackend,
    SimEngine,
    SimPRM,
    SimTask,
    VirtualClock,
    run_queries,
    run_virtual,
    sim_context,
)

BASELINE = SpexConfig(speculation=False, budget=False, early_termination=False)


def _one_search(spex: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        ctx, engines = sim_context("rebase", width=16, spex=spex)
        problem = ctx.task.load(1)[0]
        out = await build_search_graph().ainvoke(
            {"problem": dataclasses.asdict(problem), "query_id": problem.id}, context=ctx
        )
        stats = {k: dataclasses.asdict(e.stats) for k, e in engines.items()}
        return dict(out), stats

    return run_virtual(main())


def test_rebase_16_search_is_repeatable_and_takes_seconds_of_virtual_time() -> None:
    a, stats_a = _one_search()
    b, stats_b = _one_search()
    ta, tb = SearchTree.model_validate(a["tree"]), SearchTree.model_validate(b["tree"])
    assert ta.decisions() == tb.decisions()
    assert [(n.created_at, n.scored_at) for n in ta.nodes] == [
        (n.created_at, n.scored_at) for n in tb.nodes
    ]
    assert a["result"] == b["result"] and stats_a == stats_b
    result = a["result"]
    assert result["answer"] is not None and result["correct"] is not None
    # ~8 layers of ~100-token steps at ~6-7 ms/token, plus PRM passes
    assert 4.0 < result["latency_s"] < 15.0
    leaves = ta.leaves()
    assert len(leaves) == 16
    assert 5 <= sum(n.depth for n in leaves) / len(leaves) <= 11
    assert stats_a["policy"]["cached_tokens"] > 10 * stats_a["policy"]["prefill_tokens"]


def test_spex_search_decides_like_the_baseline() -> None:
    base, _ = _one_search(spex=False)
    spex, _ = _one_search(spex=True)
    assert spex["result"]["answer"] == base["result"]["answer"]
    assert spex["result"]["latency_s"] <= base["result"]["latency_s"] * 1.05


def test_64_queries_at_concurrency_16_take_a_few_real_seconds() -> None:
    async def main() -> list[dict[str, Any]]:
        ctx, _ = sim_context("rebase", width=8, spex=False)
        return await run_queries(ctx, ctx.task.load(64), concurrency=16)

    start = time.perf_counter()
    results = run_virtual(main())
    elapsed = time.perf_counter() - start
    assert len(results) == 64 and len({r["query_id"] for r in results}) == 64
    assert elapsed < 20.0
    assert 0.3 < sum(bool(r["correct"]) for r in results) / 64 <= 1.0


def test_a_recorded_search_replays_identically_under_another_profile() -> None:
    recording = Recording()
    task = SimTask(MATH_LIKE)

    async def record() -> dict[str, Any]:
        engine = SimEngine(H200_7B)
        ctx = SearchContext.create(
            RecordingBackend(SimBackend(engine, MATH_LIKE), recording),
            RecordingReward(SimPRM(engine, MATH_LIKE), recording),
            task=task,
            algorithm="rebase",
            width=4,
            spex=BASELINE,
            clock=VirtualClock(),
        )
        [out] = await run_queries(ctx, task.load(1), return_state=True)
        return out

    async def replay(rec: Recording) -> dict[str, Any]:
        engine = SimEngine(dataclasses.replace(H200_7B, hbm_bandwidth=H200_7B.hbm_bandwidth / 2))
        ctx = SearchContext.create(
            ReplayBackend(engine, rec),
            ReplayReward(engine, rec),
            task=task,
            algorithm="rebase",
            width=4,
            spex=BASELINE,
            clock=VirtualClock(),
        )
        [out] = await run_queries(ctx, task.load(1), return_state=True)
        return out

    original = run_virtual(record())
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        recording.save(Path(tmp) / "rec.json")
        loaded = Recording.load(Path(tmp) / "rec.json")
    replayed = run_virtual(replay(loaded))
    t1 = SearchTree.model_validate(original["tree"])
    t2 = SearchTree.model_validate(replayed["tree"])
    assert t1.decisions() == t2.decisions()
    assert replayed["result"]["latency_s"] > 1.3 * original["result"]["latency_s"]


def _layer_timing(pipeline: bool) -> list[tuple[float, float]]:
    """Per (query, depth): (first reward request start, last policy finish)."""
    from spex_graph.sim.presets import get_preset

    preset = get_preset("artifact")

    _, sessions = run_sim_queries(
        "rebase",
        3,
        width=8,
        profile=preset.policy["h100"],
        reward_profile=preset.reward["h100"],
        workload=preset.workload,
        spex=SpexConfig.baseline().model_copy(update={"pipeline_scoring": pipeline}),
    )
    out: list[tuple[float, float]] = []
    for session in sessions:
        by_depth: dict[int, list[Any]] = {}
        for rec in session.records:
            by_depth.setdefault(rec.key.count("/") + 1, []).append(rec)
        for recs in by_depth.values():
            first_score = min(r.started_at for r in recs if r.kind == "reward")
            last_gen = max(r.finished_at for r in recs if r.kind == "policy")
            out.append((first_score, last_gen))
    return out


def test_the_baseline_scores_each_branch_as_it_finishes_like_the_reference() -> None:
    pipelined = _layer_timing(True)
    assert any(score < done for score, done in pipelined)  # scoring before the layer ends
    lockstep = _layer_timing(False)
    assert all(score >= done for score, done in lockstep)  # the old barrier
