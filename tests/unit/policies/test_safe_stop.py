"""The safe early-termination rule: it stops only when no remaining leaf can change the vote."""

from __future__ import annotations

import pytest

from spex_graph.policies.early_stop import safe_stop
from spex_graph.voting import AnswerTally


def tally(*classes: tuple[str, list[float]]) -> AnswerTally:
    out = AnswerTally(str.__eq__, ("min",))
    leaf = 0
    for answer, weights in classes:
        for w in weights:
            out.add(leaf, answer, [w])
            leaf += 1
    return out


def test_weighted_vote_stops_only_when_the_margin_beats_every_remaining_leaf() -> None:
    t = tally(("1", [0.9, 0.8, 0.7]), ("2", [0.3]))  # W1 - W2 = 2.1
    stop = safe_stop(t, method="weighted", aggregation="min", new_leaves=2)
    assert stop.stop and stop.w1 == pytest.approx(2.4) and stop.remaining == 2
    go = safe_stop(t, method="weighted", aggregation="min", new_leaves=3)
    assert not go.stop and go.reason == "contested"


def test_majority_counts_leaves_and_ignores_rewards() -> None:
    t = tally(("1", [0.1, 0.1, 0.1, 0.1]), ("2", [1.0]))
    assert safe_stop(t, method="majority", aggregation="min", new_leaves=2).stop
    assert not safe_stop(t, method="majority", aggregation="min", new_leaves=3).stop
    # rewards out of range do not matter to a count
    assert safe_stop(
        t, method="majority", aggregation="min", new_leaves=2, rewards_in_unit_range=False
    ).stop


def test_best_vote_needs_a_perfect_leader_that_was_seen_first() -> None:
    assert safe_stop(tally(("1", [1.0]), ("2", [0.2])), method="best", aggregation="min",
                     new_leaves=9).stop  # fmt: skip
    # a later 1.0 leaf of class "2" (seen first) would win the tie
    late = tally(("2", [0.2]), ("1", [1.0]))
    assert not safe_stop(late, method="best", aggregation="min", new_leaves=1).stop
    assert not safe_stop(tally(("1", [0.99])), method="best", aggregation="min", new_leaves=1).stop


def test_no_bound_no_answer_or_bad_rewards_never_stop_and_no_leaves_left_always_stops() -> None:
    t = tally(("1", [1.0, 1.0, 1.0]))
    assert safe_stop(t, method="weighted", aggregation="min", new_leaves=None).reason == (
        "no leaf bound for this algorithm"
    )
    assert not safe_stop(tally(), method="weighted", aggregation="min", new_leaves=0).stop
    bad = safe_stop(t, method="weighted", aggregation="min", new_leaves=1,
                    rewards_in_unit_range=False)  # fmt: skip
    assert not bad.stop and bad.reason == "reward outside [0, 1]"
    tie = tally(("1", [0.5]), ("2", [0.5]))
    assert safe_stop(tie, method="weighted", aggregation="min", new_leaves=0).stop


def test_true_means_safe_in_exact_mode_and_paper_otherwise() -> None:
    from spex_graph.errors import ConfigError
    from spex_graph.policies import SpexConfig

    assert SpexConfig(early_termination=True).et_rule == "safe"
    assert SpexConfig(early_termination=True, exact=False).et_rule == "paper"
    assert SpexConfig(early_termination="paper").et_rule == "paper"
    assert SpexConfig().et_rule is None
    assert SpexConfig.full().et_rule == "safe"
    with pytest.raises(ConfigError, match="'paper' or 'safe'"):
        SpexConfig.make(early_termination="always")
