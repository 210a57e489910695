"""Replaying trees recorded on a real engine (`--workload replay:PATH`) with GPU timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spex_graph.bench.record_trees import read_recorded_trees
from spex_graph.cli import main
from spex_graph.sim.fit import fit_step_split

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real_trees"
RECORDINGS = sorted(FIXTURES.glob("*.jsonl.gz"))


KNOWN_MISMATCH = pytest.mark.xfail(
    strict=True,
    reason="known bug: on one MATH-500 tree (intermediate_algebra/1994) the replayed vote "
    "picks 'p + q' where the recorded search picked 185/78; the replay's leaf weighting "
    "differs from the recording's (open in issue #8's note)",
)


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=KNOWN_MISMATCH) if "math500" in p.name else p for p in RECORDINGS],
    ids=lambda p: p.name,
)
def test_the_baseline_replay_rebuilds_the_recorded_tree(path: Path, tmp_path: Path) -> None:
    rows = read_recorded_trees(path)
    first = rows[0]
    out = tmp_path / "r.json"
    args = [
        "bench", "--backend", "sim", "--preset", "artifact", "--workload", f"replay:{path}",
        "--algorithm", str(first["algorithm"]), "--width", str(first["width"]),
        "--queries", str(len(rows)), "--allocation", "largest-remainder",  # as recorded
        "--modes", "baseline,spex,oracle", "--json", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    base = report["results"]["baseline"]
    recorded_tokens = sum(
        int(n.get("completion_tokens") or 0) for row in rows for n in row["nodes"]
    )
    assert base["tokens_primary"] == recorded_tokens  # every recorded node, nothing else
    assert base["answers"] == [row["answer"] for row in rows]
    spex = report["results"]["spex"]
    assert spex["answers"] == base["answers"]  # exact mode on recorded rewards
    assert spex["tokens_primary"] + spex["tokens_speculative_used"] == recorded_tokens
    assert spex["speedup"] > 1.0
    assert report["workload_stats"]["preset"] == "artifact+replay"


def test_the_fit_runs_on_the_recorded_fixture() -> None:
    rows = [r for path in RECORDINGS for r in read_recorded_trees(path)]
    fit = fit_step_split(rows)
    assert fit["nodes"] >= 40
    assert 0.0 <= fit["shared_fraction"] <= 1.0
    assert fit["log_sd"] > 0


def test_a_missing_recording_is_a_one_line_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "none.jsonl"
    assert main(["bench", "--workload", f"replay:{missing}", "--queries", "1"]) == 2
    assert "no recording at" in capsys.readouterr().err
    assert main(["bench", "--workload", "trace", "--queries", "1"]) == 2
    assert "unknown --workload" in capsys.readouterr().err
