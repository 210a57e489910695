"""The simulated serving engine: SPEX vs baseline on an H100-class server, on a virtual clock.

    from spex_graph.sim import run_virtual, sim_context, run_queries, SimTask

    async def main():
        ctx, engines = sim_context("rebase", width=16)
        results = await run_queries(ctx, ctx.task.load(64), concurrency=16)
        return results, engines

    results, engines = run_virtual(main())

Everything runs on the virtual event loop (`clock`), so the timings are exact,
repeatable and cost no real time: a GPU iteration of 6 ms is a jump of the
clock. Pieces: `profiles` (GPU roofline profiles with sources), `engine`
(continuous batching, KV capacity, prefix cache, abort), `workload` (synthetic
reasoning trees and `SimTask`), `backend` (`SimBackend`), `reward` (`SimPRM`),
`replay` (replay a recorded real search under a GPU profile).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from spex_graph.context import SearchContext
from spex_graph.policies.config import SpexConfig
from spex_graph.sim.backend import SimBackend
from spex_graph.sim.clock import (
    VirtualClock,
    VirtualEventLoop,
    new_virtual_loop,
    run_virtual,
    virtual_now,
)
from spex_graph.sim.engine import EngineLoad, EngineStats, RequestLog, SimEngine, SimResult
from spex_graph.sim.profiles import (
    H100_7B,
    H100_8B,
    H200_7B,
    PROFILES,
    GpuProfile,
    calibrate,
    kv_capacity_tokens,
)
from spex_graph.sim.replay import (
    Recording,
    RecordingBackend,
    RecordingReward,
    ReplayBackend,
    ReplayReward,
)
from spex_graph.sim.reward import SimPRM
from spex_graph.sim.workload import MATH_LIKE, SimStep, SimTask, SyntheticWorkload
from spex_graph.tasks.base import Problem

__all__ = [
    "H100_7B",
    "H100_8B",
    "H200_7B",
    "MATH_LIKE",
    "PROFILES",
    "EngineLoad",
    "EngineStats",
    "GpuProfile",
    "Recording",
    "RecordingBackend",
    "RecordingReward",
    "ReplayBackend",
    "ReplayReward",
    "RequestLog",
    "SimBackend",
    "SimEngine",
    "SimPRM",
    "SimResult",
    "SimStep",
    "SimTask",
    "SyntheticWorkload",
    "VirtualClock",
    "VirtualEventLoop",
    "calibrate",
    "kv_capacity_tokens",
    "new_virtual_loop",
    "run_queries",
    "run_virtual",
    "sim_context",
    "virtual_now",
]


def sim_context(
    algorithm: str = "rebase",
    width: int = 16,
    profile: GpuProfile = H100_7B,
    workload: SyntheticWorkload = MATH_LIKE,
    shared_engine: bool = False,
    spex: SpexConfig | bool | None = None,
    reward_profile: GpuProfile | None = None,
    **search_options: Any,
) -> tuple[SearchContext, dict[str, SimEngine]]:
    """A SearchContext over SimBackend + SimPRM on simulated GPUs, clocked by the loop.

    Call it where the virtual loop will run the search (or inside it); the
    engines bind to the loop on first use. `shared_engine=True` puts policy and
    PRM on one GPU; else each has its own (the paper's two-GPU setup), the PRM's
    timed by `reward_profile` (default: `profile`).
    `spex`: a SpexConfig, True (SPEX defaults), False (the plain baseline: no
    speculation, budget or early termination) or None (SpexConfig defaults).
    `search_options` go to `SearchContext.create` (seed, max_depth, ...).

    Returns:
        (context, {"policy": engine, "reward": engine}) — the same engine twice when shared.
    """
    policy_engine = SimEngine(profile, name="policy")
    reward_engine = (
        policy_engine if shared_engine else SimEngine(reward_profile or profile, name="reward")
    )
    task = SimTask(workload)
    if spex is None or spex is True:
        spex_config = SpexConfig()
    elif spex is False:
        spex_config = SpexConfig(speculation=False, budget=False, early_termination=False)
    else:
        spex_config = spex
    ctx = SearchContext.create(
        SimBackend(policy_engine, workload, delimiter=task.step_delimiter),
        SimPRM(reward_engine, workload),
        task=task,
        algorithm=algorithm,
        width=width,
        clock=VirtualClock(),
        spex=spex_config,
        **search_options,
    )
    return ctx, {"policy": policy_engine, "reward": reward_engine}


async def run_queries(
    context: SearchContext,
    problems: Sequence[Problem],
    concurrency: int = 16,
    *,
    return_state: bool = False,
) -> list[dict[str, Any]]:
    """Search every problem through the LangGraph graph, `concurrency` at a time.

    Returns each query's `result` dict (or the whole output state with
    `return_state=True`), in `problems` order. Query ids are the problem ids.
    """
    from spex_graph.graph import build_search_graph

    graph = build_search_graph()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(problem: Problem) -> dict[str, Any]:
        async with gate:
            out = await graph.ainvoke(
                {"problem": dataclasses.asdict(problem), "query_id": problem.id},
                context=context,
            )
        return dict(out) if return_state else dict(out["result"])

    return list(await asyncio.gather(*(one(p) for p in problems)))
