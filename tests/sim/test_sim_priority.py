"""Primary work never waits behind speculation: the sim engine's SGLang priority
scheduling and pre-emption, and the whole dispatcher path on saturated engines."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from spex_graph.backends.gate import PRIMARY_PRIORITY
from spex_graph.requests import generation_builder, score_request
from spex_graph.sim import H100_7B, SimEngine, run_virtual, sim_context, virtual_now

SPEC = 0
PRIMARY = PRIMARY_PRIORITY
SMALL = dataclasses.replace(H100_7B, name="small", max_running_requests=4)


def _started(engine: SimEngine, rid: str) -> float:
    started = next(entry for entry in engine.log if entry.request_id == rid).started_at
    assert started is not None
    return started


def test_stock_rule_preempts_running_speculation_when_the_batch_is_full() -> None:
    async def main() -> tuple[SimEngine, float, float]:
        engine = SimEngine(SMALL)
        spec = [asyncio.ensure_future(engine.generate(f"s{i}", 100, 400)) for i in range(4)]
        await asyncio.sleep(0.05)  # the four speculative requests fill the batch
        t0 = virtual_now()
        await engine.generate("p", 100, 50, priority=PRIMARY)
        await asyncio.gather(*spec)
        return engine, t0, _started(engine, "p")

    engine, t0, started = run_virtual(main())
    preempted = [log for log in engine.log if log.preempted]
    assert [log.request_id for log in preempted] == ["s3"]  # newest lowest-priority first
    assert started - t0 < 0.01  # admitted at the next iteration boundary
    assert engine.stats.preempted == 1
    assert all(log.outcome == "finished" for log in engine.log)
    s3 = next(log for log in engine.log if log.request_id == "s3")
    assert s3.output_tokens == 400  # it resumed and finished its whole output


def test_stock_rule_needs_a_priority_gap_above_the_threshold() -> None:
    async def main(gap: int) -> int:
        engine = SimEngine(SMALL)
        spec = [asyncio.ensure_future(engine.generate(f"s{i}", 100, 200)) for i in range(4)]
        await asyncio.sleep(0.05)
        await engine.generate("p", 100, 10, priority=gap)
        await asyncio.gather(*spec)
        return engine.stats.preempted

    assert run_virtual(main(10)) == 0  # SGLang: diff must exceed the threshold (10)
    assert run_virtual(main(11)) == 1


def test_kv_shortage_preempts_only_in_strict_mode() -> None:
    tight = dataclasses.replace(SMALL, kv_capacity_tokens=1200, max_running_requests=64)

    async def main(mode: str) -> tuple[int, float]:
        engine = SimEngine(tight, preemption=mode)
        spec = [asyncio.ensure_future(engine.generate(f"s{i}", 100, 300)) for i in range(3)]
        await asyncio.sleep(0.05)  # 1200 KV tokens reserved: the pool is full
        t0 = virtual_now()
        await engine.generate("p", 100, 10, priority=PRIMARY)
        await asyncio.gather(*spec)
        return engine.stats.preempted, _started(engine, "p") - t0

    stock_preempted, stock_wait = run_virtual(main("sglang"))
    strict_preempted, strict_wait = run_virtual(main("strict"))
    assert stock_preempted == 0 and stock_wait > 1.0  # waits for a speculative request
    assert strict_preempted == 1 and strict_wait < 0.01


def test_promote_moves_a_queued_request_ahead() -> None:
    async def main(preemption: str) -> list[str]:
        engine = SimEngine(
            dataclasses.replace(SMALL, max_running_requests=1), preemption=preemption
        )
        order: list[str] = []

        async def run(rid: str, priority: int) -> None:
            await engine.generate(rid, 50, 20, priority=priority)
            order.append(rid)

        tasks = [asyncio.ensure_future(run(f"r{i}", SPEC)) for i in range(4)]
        await asyncio.sleep(0.001)
        assert engine.promote("r3", PRIMARY)
        await asyncio.gather(*tasks)
        return order

    assert run_virtual(main("off")) == ["r0", "r3", "r1", "r2"]
    assert run_virtual(main("sglang")) == ["r3", "r0", "r1", "r2"]  # r0 was pre-empted


def _probe_delays(speculation: bool) -> tuple[float, float, int]:
    """Both engines saturated by primary work (+ speculation when on); a primary
    expansion and a primary scoring request go through the dispatcher. Returns their
    engine queueing delays and how many speculative requests were queued."""

    async def main() -> tuple[float, float, int]:
        ctx, engines = sim_context("rebase", width=4, spex=False)
        policy, reward = engines["policy"], engines["reward"]
        policy.profile = reward.profile = SMALL
        background: list[asyncio.Future[object]] = []
        if speculation:
            for i in range(16):
                background.append(
                    asyncio.ensure_future(policy.generate(f"spec{i}", 300, 400, priority=SPEC))
                )
                background.append(
                    asyncio.ensure_future(reward.generate(f"sscore{i}", 6000, 0, priority=SPEC))
                )
        for i in range(4):
            background.append(
                asyncio.ensure_future(policy.generate(f"prim{i}", 300, 400, priority=PRIMARY))
            )
        for i in range(12):
            background.append(
                asyncio.ensure_future(reward.generate(f"pscore{i}", 6000, 0, priority=PRIMARY))
            )
        await asyncio.sleep(0.02)
        assert policy.load().running == 4 and reward.load().waiting > 0  # both busy
        queued = policy.load().waiting + reward.load().waiting
        problem = ctx.task.load(1)[0]
        session = ctx.dispatcher.session(problem.id)
        build = generation_builder(ctx, problem, [], (0,), until_end=False)
        expand = session.expand((0,), build)
        score = session.score((9,), score_request(ctx, problem, ["x = 1"], "probe-score"))
        await asyncio.gather(expand, score)
        gen_log = next(log for log in policy.log if log.request_id.startswith(problem.id))
        score_log = next(log for log in reward.log if log.request_id == "probe-score")
        await asyncio.gather(*background)
        assert gen_log.started_at is not None and score_log.started_at is not None
        return (
            gen_log.started_at - gen_log.submitted_at,
            score_log.started_at - score_log.submitted_at,
            queued,
        )

    return run_virtual(main())


def test_a_primary_waits_exactly_as_long_with_speculation_as_without() -> None:
    gen_off, score_off, queued_off = _probe_delays(speculation=False)
    gen_on, score_on, queued_on = _probe_delays(speculation=True)
    assert queued_on > queued_off  # speculation really was queued on both engines
    assert gen_off > 0.5 and score_off > 0.0  # the probes really had to queue
    assert gen_on == pytest.approx(gen_off, rel=1e-12)
    assert score_on == pytest.approx(score_off, rel=1e-12)


def test_a_primary_joining_speculation_is_accounted_and_promoted_as_primary() -> None:
    async def main() -> tuple[int, float, float, float]:
        ctx, engines = sim_context("rebase", width=4, spex=True)
        policy = engines["policy"]
        policy.profile = dataclasses.replace(SMALL, max_running_requests=1)
        budget = ctx.dispatcher.budget
        assert budget is not None
        problem = ctx.task.load(1)[0]
        budget.register(problem.id, 4)
        budget.awaiting_load_report = False  # grant by hand, before any load report
        blocker = asyncio.ensure_future(policy.generate("blocker", 300, 300, priority=PRIMARY))
        await asyncio.sleep(0.01)
        session = ctx.dispatcher.session(problem.id)
        build = generation_builder(ctx, problem, [], (0,), until_end=False)
        claims = budget.try_grant(problem.id, 1)
        task = session.expand((0,), build, speculative=True, claim=claims[0])
        await asyncio.sleep(0.01)
        spec_before = budget.spec_tokens
        joined = session.expand((0,), build)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        log = next(entry for entry in policy.log if entry.request_id.startswith(problem.id))
        primary_during = budget.primary_tokens
        await asyncio.gather(task, joined, blocker)
        return log.priority, spec_before - budget.spec_tokens, primary_during, budget.primary_tokens

    priority, spec_released, primary_during, primary_after = run_virtual(main())
    assert priority == PRIMARY  # promoted in the engine queue
    assert spec_released > 0  # its speculative claim went back to the budget
    assert primary_during > 0 and primary_after == 0  # counted as primary while it ran
