"""The reward-quality evaluation: AUC and accuracies on scripted samples."""

from __future__ import annotations

import math

from spex_graph.cli import main
from spex_graph.reward_eval import ScoredSample, auc, combined_score, summarise
from spex_graph.tasks import get_task


def test_auc() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5], [0.5]) == 0.5
    assert math.isnan(auc([], [0.1]))


def test_combined_score_orders_verified_over_plain_over_wrong() -> None:
    assert combined_score(0.6, 2, 0) > combined_score(0.6, 0, 0) > combined_score(0.6, 2, 1)


def test_summary_accuracies() -> None:
    def s(pid: str, k: int, ans: str, ok: bool, score: float) -> ScoredSample:
        return ScoredSample(pid, k, ans, ok, score, 0, 0, score)

    samples = [
        s("a", 0, "1", False, 0.2), s("a", 1, "2", True, 0.9), s("a", 2, "1", False, 0.3),
        s("b", 0, "5", True, 0.8), s("b", 1, "5", True, 0.7), s("b", 2, "6", False, 0.1),
    ]  # fmt: skip
    out = summarise(samples, get_task("gsm8k"))
    assert out["accuracy_top_ranked"] == 1.0
    assert out["accuracy_single_sample"] == 0.5
    assert out["accuracy_majority_vote"] == 0.5
    assert out["auc_combined"] == 1.0


def test_cli_runs_on_the_fake_backend(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["eval-reward", "--backend", "fake", "--limit", "3", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "auc_combined" in out and "accuracy_top_ranked" in out
