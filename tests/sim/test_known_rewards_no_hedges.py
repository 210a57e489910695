"""A selection the speculator predicts from rewards that are all in is the one the real
search is about to make: it is launched without hedges, and every request of it is used."""

from __future__ import annotations

from typing import Any

import pytest

from spex_graph.policies.config import SpexConfig
from spex_graph.policies.speculation import Speculator
from spex_graph.runtime.dispatcher import QuerySession, key_str
from spex_graph.sim import run_queries, run_virtual, sim_context


@pytest.mark.parametrize(
    ("algorithm", "force_hedge"), [("rebase", False), ("rebase", True), ("beam", False)]
)
def test_a_selection_on_known_rewards_is_launched_exactly(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, force_hedge: bool
) -> None:
    """force_hedge: hedge those selections anyway (as before the rule): then some of
    their requests are wasted. Not for beam: its fan-out is fixed, so it never widens
    (tests/sim/test_fixed_fan_out_no_widening.py)."""
    exact: list[tuple[QuerySession, str]] = []  # requests of selections on known rewards
    hedged = 0
    launch = Speculator._launch

    def spy(self: Speculator, *args: Any, hedge: bool = True) -> None:
        nonlocal hedged
        before = set(self.launched)
        launch(self, *args, hedge=hedge or force_hedge)
        if hedge:
            hedged += 1
        else:
            exact.extend((self.session, key_str(k)) for k in self.launched if k not in before)

    monkeypatch.setattr(Speculator, "_launch", spy)

    async def main() -> list[dict[str, Any]]:
        ctx, _ = sim_context(algorithm, width=8, preset="artifact", spex=SpexConfig())
        return await run_queries(ctx, ctx.task.load(4), concurrency=2)

    results = run_virtual(main())
    assert all(r["answer"] is not None for r in results)
    assert exact and hedged  # both kinds of lookahead happened
    outcomes = {
        (id(session), r.key): r.outcome
        for session in {id(s): s for s, _ in exact}.values()
        for r in session.records
        if r.kind == "policy" and r.speculative
    }
    seen = {outcomes[(id(s), key)] for s, key in exact}
    if force_hedge:
        assert seen - {"used"}  # hedges beside a known selection: cancelled or wasted
    else:
        assert seen == {"used"}
