"""`spex bench --early-termination {paper,safe}` on the artifact preset: ET fires and pays.

The artifact preset's PRM gives confident, correlated scores (as the paper's
Llemma PRM does), so both rules fire on most queries. Ratios come from the
virtual clock, so they are exact and repeatable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from spex_graph.cli import main

ARGS = [
    "bench", "--backend", "sim", "--preset", "artifact", "--algorithm", "rebase",
    "--width", "16", "--queries", "8", "--concurrency", "1",
]  # fmt: skip


def bench(tmp_path: Any, modes: str, *extra: str) -> dict[str, Any]:
    out = tmp_path / "r.json"
    assert main([*ARGS, "--modes", modes, "--json", str(out), *extra]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_early_termination_fires_saves_tokens_and_keeps_answers(tmp_path: Any) -> None:
    safe = bench(tmp_path, "baseline,et-only,spex", "--early-termination", "safe")
    paper = bench(tmp_path, "baseline,et-only,spex", "--early-termination")  # bare: paper
    plain = bench(tmp_path, "baseline,spex")
    assert safe["spec"]["early_termination"] == "safe"
    assert paper["spec"]["early_termination"] == "paper"
    base = safe["results"]["baseline"]
    assert base["early_stopped"] == 0
    for report in (safe, paper):
        et, spex = report["results"]["et-only"], report["results"]["spex"]
        assert et["early_stopped"] > 8 // 2  # most queries
        assert spex["early_stopped"] == et["early_stopped"]
        assert et["tokens_primary"] < base["tokens_primary"]
        assert et["speedup"] > 1.1
        # ET on top of speculation beats speculation alone
        assert spex["speedup"] > plain["results"]["spex"]["speedup"]
    # safe keeps every answer (exact mode); on this workload the paper rule does too,
    # and it stops sooner
    assert safe["results"]["et-only"]["same_answers_as_baseline"] == 1.0
    assert safe["results"]["spex"]["same_answers_as_baseline"] == 1.0
    assert paper["results"]["et-only"]["speedup"] > safe["results"]["et-only"]["speedup"]
    # at concurrency 1 nothing competes: a query ET did not stop takes exactly as long
    assert abs(safe["results"]["et-only"]["unstopped_speedup"] - 1.0) < 1e-9


def test_an_unknown_rule_is_a_one_line_error(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, "--early-termination", "always"])
    assert exc.value.code == 2
    assert "invalid choice: 'always'" in capsys.readouterr().err
