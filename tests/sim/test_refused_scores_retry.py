"""A speculative node whose score the reward engine had no room for is scored as soon
as it has room, not only when the search adopts the node."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import run_sim_queries

from spex_graph.algorithms.base import child_keys
from spex_graph.policies.budget import BudgetController
from spex_graph.policies.config import SpexConfig
from spex_graph.policies.speculation import Speculator

OPENS_AT = 2.0  # virtual seconds: before this the reward engine takes no speculative score


@pytest.mark.parametrize("retry", [True, False])
def test_a_refused_speculative_score_is_sent_once_the_reward_engine_has_room(
    monkeypatch: pytest.MonkeyPatch, retry: bool
) -> None:
    """retry=False: the retry switched off, so the test shows it can fail."""
    monkeypatch.setattr(
        BudgetController, "allow_speculative_score", lambda self, now: now >= OPENS_AT
    )
    if not retry:
        monkeypatch.setattr(Speculator, "_retry_unscored", lambda self: None)
    decided_but_kept: list[tuple[int, ...]] = []
    reconcile = Speculator.reconcile

    def spy(self: Speculator, tree: Any, orders: Any) -> None:
        reconcile(self, tree, orders)
        depth = max((len(key) for _, key in child_keys(tree, orders)), default=0)
        # the nodes of the selection just made, and above it, are decided: the search
        # scores the ones it keeps and needs no reward for the others
        decided_but_kept.extend(k for k in self._unscored if len(k) <= depth)

    monkeypatch.setattr(Speculator, "reconcile", spy)
    results, sessions = run_sim_queries("rebase", 2, width=8, preset="artifact", spex=SpexConfig())
    assert all(r["answer"] is not None for r in results)
    assert not decided_but_kept
    retried = []  # finished while refused, then scored speculatively
    for session in sessions:
        refused = {
            r.key
            for r in session.records
            if r.kind == "policy"
            and r.speculative
            and r.finished_at is not None
            and r.finished_at < OPENS_AT
        }
        retried += [
            r.key
            for r in session.records
            if r.kind == "reward" and r.speculative and r.key in refused
        ]
    if retry:
        assert retried
        assert all(
            r.enqueued_at >= OPENS_AT
            for s in sessions
            for r in s.records
            if r.kind == "reward" and r.speculative
        )
    else:
        assert not retried
