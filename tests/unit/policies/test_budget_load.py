"""The budget under load: both engines' reports, revocation, value order, `auto()`."""

from __future__ import annotations

import pytest

from spex_graph.backends.base import GPU_BATCH_COST, BackendCapabilities
from spex_graph.backends.embedded.bench import BenchResult, batch_cost
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.policies.budget import BudgetController, BusyMeter
from spex_graph.policies.config import SpexConfig


def _budget() -> BudgetController:
    budget = BudgetController(tokens_per_request=10.0, fair=False)
    budget.register("a", 4)
    budget.register("b", 4)
    return budget


def test_a_full_policy_kv_pool_revokes_the_lowest_value_speculation_first() -> None:
    budget = _budget()
    revoked: list[float] = []
    claims = budget.try_grant("a", 6, values=[0.9, 0.8, 0.5, 0.4, 0.2, 0.1])
    for claim in claims:
        claim.revoke = lambda v=claim.value: revoked.append(v)
    assert len(claims) == 6 and budget.spec_tokens == 60
    budget.observe_load(running=10, waiting=0, kv_usage=0.7, max_running=64)
    # KV at 70%: M halves to 60 tokens, so nothing to revoke yet
    assert budget.capacity == pytest.approx(60.0)
    assert revoked == []
    budget.observe_load(running=10, waiting=0, kv_usage=0.85, max_running=64)
    assert budget.capacity == 0.0
    assert revoked == [0.1, 0.2, 0.4, 0.5, 0.8, 0.9]  # cheapest first, all of it
    assert budget.spec_tokens == 0 and budget.revoked == 6


def test_a_queue_on_the_reward_engine_shrinks_m_to_zero() -> None:
    budget = _budget()  # widths 8: M is 0 from a queue of a whole layer (8 requests) on
    assert budget.reward_scale == 1.0
    budget.observe_reward_load(waiting=8)
    assert budget.reward_scale == 0.0 and budget.capacity == 0.0
    for _ in range(5):  # the peak decays 20% per report once the queue is gone
        budget.observe_reward_load(waiting=0)
    assert 0.0 < budget.reward_scale < 1.0
    for _ in range(30):
        budget.observe_reward_load(waiting=0)
    assert budget.reward_scale > 0.99


def test_a_busy_reward_engine_shrinks_m_with_its_busy_fraction() -> None:
    budget = _budget()
    assert budget.reward_scale == 1.0  # no scoring seen yet
    budget.reward_started(0.0)
    assert budget.reward_scale == 0.0  # busy until shown otherwise: no first-burst pile-up
    budget.reward_finished(0.1)
    budget.tick(10.0)  # then 10 s without primary scoring (tau 2 s)
    assert budget.reward_scale == 1.0
    budget.reward_started(10.0)  # primary scoring without a pause from now on
    budget.tick(12.0)
    assert 0.0 < budget.reward_scale < 1.0  # ~63% busy: between the full and zero marks
    budget.tick(20.0)  # 10 s of it: busy ~99%
    assert budget.reward_scale == 0.0 and budget.capacity == 0.0


def test_m_is_zero_until_the_first_load_report_which_is_taken_as_it_is() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False, awaiting_load_report=True)
    budget.register("a", 8)
    assert budget.capacity == 0.0 and budget.try_grant("a", 2) == []
    budget.observe_load(running=4, waiting=0, kv_usage=0.1, max_running=64)
    assert budget.load_scale == 2.0  # an idle engine: no gradual ramp from 0
    assert len(budget.try_grant("a", 2)) == 2
    loaded = BudgetController(tokens_per_request=10.0, fair=False, awaiting_load_report=True)
    loaded.register("a", 8)
    loaded.observe_load(running=64, waiting=30, kv_usage=0.9, max_running=64)
    assert loaded.capacity == 0.0


def test_valuable_speculation_displaces_cheaper_speculation_of_other_queries() -> None:
    budget = _budget()  # M = 1.5 x 8 x 10 = 120 tokens
    cheap = budget.try_grant("a", 12, values=[0.1] * 12)
    cancelled: list[int] = []
    for i, claim in enumerate(cheap):
        claim.revoke = lambda i=i: cancelled.append(i)
    assert budget.free() == 0
    assert budget.try_grant("b", 1, values=[0.15]) == []  # not worth twice as much
    better = budget.try_grant("b", 2, values=[0.9, 0.8])
    assert len(better) == 2 and len(cancelled) == 2
    assert budget.spec_tokens == 120  # the pool stays within M


def test_speculative_scoring_waits_for_an_idle_reward_engine() -> None:
    budget = _budget()
    assert not budget.allow_speculative_score(0.0)  # busy until shown otherwise
    assert budget.allow_speculative_score(10.0)  # 10 s without primary scoring
    budget.reward_started(10.0)
    assert not budget.allow_speculative_score(15.0)
    budget.reward_finished(15.0)
    budget.observe_reward_load(waiting=1)
    assert not budget.allow_speculative_score(30.0)  # something waits in its queue
    budget.observe_reward_load(waiting=0)
    assert budget.allow_speculative_score(30.0)
    reference = BudgetController(load_aware=False)
    assert reference.allow_speculative_score(0.0)


def test_beside_an_sd_policy_engine_only_a_lone_query_scores_speculatively() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False)
    budget.register("a", 4)
    assert not budget.allow_speculative_score(0.0)  # the PRM is busy until shown otherwise
    assert budget.allow_speculative_score(10.0)  # idle PRM, plain policy engine
    budget.observe_load(
        running=4, waiting=0, kv_usage=0.1, max_running=64, speculative_decoding=True
    )
    assert budget.policy_speculative_decoding  # learnt from the server after the start
    assert budget.allow_speculative_score(10.0)  # alone: nobody else's scoring waits
    budget.register("b", 4)
    assert not budget.allow_speculative_score(10.0)
    budget.unregister("b")
    assert budget.allow_speculative_score(10.0)


def test_beside_an_sd_policy_engine_a_busy_prm_stops_shared_speculation() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False)
    budget.register("a", 4)
    # the PRM busy 85% of the time (primary scoring), measured over a long window
    budget.reward_meter = BusyMeter(tau=1e9, in_flight=1, fraction=0.85, _since=0.0)
    assert budget.reward_scale == pytest.approx(0.125)  # 1 - (0.85 - 0.5) / 0.4
    budget.observe_load(
        running=4, waiting=0, kv_usage=0.1, max_running=64, speculative_decoding=True
    )
    assert budget.reward_scale == pytest.approx(0.125)  # alone: nobody else to slow
    budget.register("b", 4)
    assert budget.reward_scale == 0.0 and budget.capacity == 0.0
    budget.reward_meter.fraction = 0.55  # a mostly idle PRM: speculation again
    assert budget.reward_scale == pytest.approx(0.875)
    budget.reward_meter.fraction = 0.85
    budget.policy_speculative_decoding = False  # a plain engine keeps its share
    assert budget.reward_scale == pytest.approx(0.125)


def test_refused_speculative_scores_are_retried_only_for_a_lone_query_on_a_plain_engine() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False)
    budget.register("a", 4)
    assert budget.may_retry_refused_scores()
    budget.register("b", 4)
    assert not budget.may_retry_refused_scores()  # the retried passes would delay b's
    budget.unregister("b")
    budget.observe_load(
        running=4, waiting=0, kv_usage=0.1, max_running=64, speculative_decoding=True
    )
    assert not budget.may_retry_refused_scores()  # with SD the PRM is the bottleneck


def test_busy_meter_is_a_time_weighted_fraction() -> None:
    meter = BusyMeter(tau=1.0, fraction=0.0)
    meter.change(+1, 0.0)
    assert meter.busy(1.0) == pytest.approx(1 - 1 / 2.718281828, rel=1e-6)
    meter.change(-1, 1.0)
    assert meter.busy(50.0) < 1e-9


def test_auto_speculates_only_where_batching_is_nearly_free() -> None:
    class Costly(ScriptedBackend):
        @property
        def capabilities(self) -> BackendCapabilities:
            return BackendCapabilities(batch_cost=0.67)

    class Unknown(ScriptedBackend):
        @property
        def capabilities(self) -> BackendCapabilities:
            return BackendCapabilities()

    gpu = SpexConfig.auto(ScriptedBackend())
    assert gpu.speculation and gpu.budget and not gpu.early_termination
    assert SpexConfig.auto(Costly()) == SpexConfig.baseline()
    assert SpexConfig.auto(Unknown()) == SpexConfig.baseline()
    assert SpexConfig.auto() == SpexConfig.baseline()
    assert GPU_BATCH_COST <= 0.05


def test_the_embedded_engine_batch_cost_from_a_measurement() -> None:
    # the README's 2-core 0.5B measurement: 43.3 tok/s at 1 branch, 60.7 at 8
    results = [BenchResult(1, 433, 10.0), BenchResult(8, 607, 10.0)]
    assert batch_cost(results) == pytest.approx((8 / (60.7 / 43.3) - 1) / 7)
    assert batch_cost([BenchResult(1, 10, 1.0)]) is None


def test_the_library_default_is_auto() -> None:
    from helpers import AnswerReward, toy_math_script

    from spex_graph.context import SearchContext
    from spex_graph.sim import sim_context

    class Costly(ScriptedBackend):
        @property
        def capabilities(self) -> BackendCapabilities:
            return BackendCapabilities(batch_cost=0.67, seeded=True)

    ctx = SearchContext.create(Costly(script=toy_math_script()), AnswerReward(), task="gsm8k")
    assert ctx.spex == SpexConfig.baseline() and ctx.dispatcher.budget is None
    sim, _ = sim_context("rebase", width=4)
    assert sim.spex.speculation and sim.dispatcher.budget is not None


def test_speculation_keeps_below_the_engines_free_batch() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False, free_batch=20)
    budget.register("a", 16)
    budget.observe_load(running=16, waiting=0, kv_usage=0.1, max_running=4096)
    assert budget.batch_room == 4.0  # 20 - 16 primaries: 4 speculative sequences
    assert len(budget.try_grant("a", 10)) == 4
    # the 4 granted now run: the engine counts 20, of which 16 are primaries
    budget.observe_load(running=20, waiting=0, kv_usage=0.1, max_running=4096)
    assert budget.batch_room == 4.0
    budget.observe_load(running=28, waiting=0, kv_usage=0.1, max_running=4096)
    assert budget.batch_room == 0.0 and budget.free() == 0.0  # 24 primaries: past the knee
    # a knee learnt after the start (SGLang's /server_info) arrives with a load report
    budget.observe_load(running=28, waiting=0, kv_usage=0.1, max_running=4096, free_batch=32)
    assert budget.free_batch == 32 and budget.batch_room == 8.0


def test_a_query_that_ran_mostly_without_room_does_not_start_speculating_late() -> None:
    budget = BudgetController(tokens_per_request=10.0, fair=False)
    budget.register("early", 4)
    budget.tick(0.0)
    budget.observe_load(running=4, waiting=0, kv_usage=0.1, max_running=64)
    budget.tick(5.0)
    budget.register("late", 4)
    budget.observe_load(running=8, waiting=3, kv_usage=0.9, max_running=64)  # saturated
    budget.tick(10.0)  # 5 s without room: all "late" has known
    budget.observe_load(running=8, waiting=0, kv_usage=0.1, max_running=64)
    assert budget.load_scale == 1.0 and budget.free() > 0  # room again
    assert not budget.started_late("early")  # 5 of its 10 s without room
    assert budget.started_late("late")
    assert budget.try_grant("late", 2) == []
    assert len(budget.try_grant("early", 2)) == 2


def test_a_full_reward_kv_pool_stops_speculation_and_speculative_scoring() -> None:
    budget = _budget()
    budget.reward_started(0.0)
    budget.reward_finished(0.1)
    budget.tick(10.0)  # then an idle reward engine, as far as this client sees
    budget.observe_reward_load(waiting=0, kv_usage=0.5)
    assert budget.reward_scale == 1.0 and budget.allow_speculative_score(10.0)
    budget.observe_reward_load(waiting=0, kv_usage=0.7)  # shrinking from 60%
    assert budget.reward_scale == pytest.approx(0.5)
    assert not budget.allow_speculative_score(10.0)
    budget.observe_reward_load(waiting=0, kv_usage=0.85)
    assert budget.reward_scale == 0.0 and budget.capacity == 0.0
    budget.observe_reward_load(waiting=0)  # a report without KV figures keeps the last
    assert budget.reward_kv == pytest.approx(0.85)
