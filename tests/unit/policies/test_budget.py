"""The inter-query budget controller: invariants under random interleavings."""

from __future__ import annotations

import asyncio

from helpers import AnswerReward
from hypothesis import given, settings
from hypothesis import strategies as st

from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.policies.budget import BudgetController, Claim
from spex_graph.runtime.dispatcher import Dispatcher

ops = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 3), st.integers(1, 16)),
        st.tuples(st.just("unregister"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("primary"), st.integers(0, 3), st.integers(1, 300)),
        st.tuples(st.just("primary_done"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("grant"), st.integers(0, 3), st.integers(0, 40)),
        st.tuples(st.just("release"), st.integers(0, 1000), st.just(0)),
        st.tuples(st.just("release_again"), st.integers(0, 1000), st.just(0)),
        st.tuples(st.just("load"), st.integers(0, 64), st.integers(0, 64)),
        st.tuples(st.just("report"), st.integers(0, 3), st.integers(0, 100)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.booleans(), st.booleans())
def test_budget_invariants_hold_for_any_interleaving(sequence, fair, load_aware) -> None:  # type: ignore[no-untyped-def]
    budget = BudgetController(fair=fair, load_aware=load_aware, tokens_per_request=50.0)
    claims: list[Claim] = []
    primaries: list[float] = []
    for op, a, b in sequence:
        if op == "register":
            budget.register(f"q{a}", b)
        elif op == "unregister":
            # a query only ends after its claims are released (the dispatcher does this)
            for c in claims:
                if c.query_id == f"q{a}":
                    budget.release(c)
            budget.unregister(f"q{a}")
        elif op == "primary":
            budget.primary_started(float(b))  # primary work is never refused
            primaries.append(float(b))
        elif op == "primary_done" and primaries:
            budget.primary_finished(primaries.pop())
        elif op == "grant":
            before = budget.spec_tokens
            granted = budget.try_grant(f"q{a}", b)
            assert len(granted) <= b
            if granted:
                # a grant never pushes speculative work above M - primary
                assert budget.spec_tokens <= budget.capacity - budget.primary_tokens + 1e-6
                assert budget.spec_tokens > before
            claims.extend(granted)
        elif op in ("release", "release_again") and claims:
            budget.release(claims[a % len(claims)])
        elif op == "load":
            budget.observe_load(a, b, (a % 10) / 10, 32)
            assert 0.0 <= budget.load_scale <= 2.0
        elif op == "report":
            budget.report(f"q{a}", useful=b / 100, unsettled=1 - b / 100)
        live = sum(c.tokens for c in claims if not c.released)
        assert abs(budget.spec_tokens - live) < 1e-6  # every claim accounted for
        assert budget.spec_tokens >= 0 and budget.primary_tokens >= -1e-9
    for c in claims:
        budget.release(c)
    assert budget.spec_tokens < 1e-6


def test_formula_matches_the_reference_rule() -> None:
    budget = BudgetController(factor=1.5, fair=False, load_aware=False, tokens_per_request=10.0)
    budget.register("q", 8)
    assert budget.capacity == 1.5 * 8 * 10
    budget.primary_started(50.0)
    # min(n, M - primary - spec) in units of 10 tokens: (120 - 50) / 10 = 7
    assert len(budget.try_grant("q", 100)) == 7
    assert budget.try_grant("q", 1) == []
    assert budget.try_grant("unknown", 3) == []


def test_fair_share_favours_useful_unsettled_queries() -> None:
    budget = BudgetController(fair=True, load_aware=False, tokens_per_request=1.0)
    budget.register("easy", 8)
    budget.register("hard", 8)
    budget.report("easy", useful=0.1, unsettled=0.0)
    budget.report("hard", useful=0.9, unsettled=1.0)
    assert budget.share("hard") > 3 * budget.share("easy")
    assert abs(budget.share("hard") + budget.share("easy") - budget.capacity) < 1e-6


def test_load_shrinks_and_idle_grows_capacity() -> None:
    budget = BudgetController(tokens_per_request=1.0)
    budget.register("q", 8)
    base = budget.capacity
    for _ in range(5):
        budget.observe_load(running=64, waiting=64, kv_usage=0.97, max_running=64)
    assert budget.capacity < 0.5 * base
    for _ in range(10):
        budget.observe_load(running=2, waiting=0, kv_usage=0.1, max_running=64)
    assert budget.capacity > base


async def test_primary_work_starts_even_when_the_budget_is_exhausted() -> None:
    backend = ScriptedBackend(script=lambda r, s: "x", latency=lambda r: 0.01)
    budget = BudgetController(tokens_per_request=10.0, fair=False, load_aware=False)
    dispatcher = Dispatcher(backend, AnswerReward(), budget=budget)
    budget.register("q", 1)
    session = dispatcher.session("q")
    claims = budget.try_grant("q", 100)
    assert claims and budget.free() < 10
    for i, claim in enumerate(claims):
        build = lambda rid, i=i: GenerationRequest("p", (i,), rid)  # noqa: E731
        session.expand((i,), build, speculative=True, claim=claim)
    primary = session.expand((99,), lambda rid: GenerationRequest("p", (99,), rid))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(backend.calls) == len(claims) + 1  # submitted at once, not queued behind
    await primary
    await dispatcher.close("q")
    assert budget.spec_tokens == 0  # every claim released on completion or cancel


def test_rising_latency_shrinks_and_recovery_grows_the_budget() -> None:
    budget = BudgetController(tokens_per_request=1.0)
    budget.register("q", 8)
    budget.observe_latency(0.01)
    base = budget.capacity
    for _ in range(10):
        budget.observe_latency(0.05)
    assert budget.capacity < 0.5 * base
    for _ in range(40):
        budget.observe_latency(0.01)
    assert budget.capacity >= base


async def test_exact_mode_warns_once_about_an_unseeded_backend(caplog) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import dataclass

    from helpers import fake_context

    from spex_graph import build_search_graph
    from spex_graph.backends.base import BackendCapabilities
    from spex_graph.policies.config import SpexConfig

    @dataclass
    class Unseeded(ScriptedBackend):
        name: str = "unseeded-fake"

        @property
        def capabilities(self) -> BackendCapabilities:
            return BackendCapabilities(can_abort=True, seeded=False)

    ctx = fake_context(backend=Unseeded(), spex=SpexConfig())  # auto() would not speculate
    with caplog.at_level("WARNING"):
        await build_search_graph().ainvoke({"question": "q"}, context=ctx)
        await build_search_graph().ainvoke({"question": "q2"}, context=ctx)
    warnings = [r for r in caplog.records if "per-request seeds" in r.getMessage()]
    assert len(warnings) == 1 and "unseeded-fake" in warnings[0].getMessage()
