"""Replaying trees recorded on a real engine (`--workload replay:PATH`) with GPU timing."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from spex_graph.bench.record_trees import read_recorded_trees
from spex_graph.cli import main
from spex_graph.graph import build_search_graph
from spex_graph.sim import sim_context
from spex_graph.sim.clock import run_virtual
from spex_graph.sim.fit import fit_step_split
from spex_graph.sim.recorded import RecordedTask, load_recorded_workload
from spex_graph.sim.workload import SimStep, SimTask, parse_steps

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real_trees"
RECORDINGS = sorted(FIXTURES.glob("*.jsonl.gz"))


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
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


def test_every_recorded_answer_survives_the_replayed_step_text() -> None:
    # MATH-500 answers hold braces (\\frac{185}{78}); a leaf whose answer is lost no longer votes
    answers = {
        str(n["answer"])
        for path in RECORDINGS
        for row in read_recorded_trees(path)
        for n in row["nodes"]
        if n["answer"] is not None
    }
    assert any("{" in a for a in answers)
    for answer in sorted(answers):
        text = (
            "[sim d=1 ok=1 n=9 D=1 h=000001] Step 1.\n\n"
            + SimStep(2, True, 5, 2, 7, answer).render()
        )
        assert SimTask().extract_answer(text) == answer
        assert parse_steps(text)[-1].answer == answer


def test_replayed_answers_vote_together_as_the_recorded_task_grouped_them(
    tmp_path: Path,
) -> None:
    math500 = RecordedTask(load_recorded_workload(FIXTURES / "math500-rebase-w8-0.5b.jsonl.gz"))
    assert math500.equivalent("(3, 0)", "(3,0)") and not math500.equivalent("(3, 0)", "(0,3)")
    gsm8k = RecordedTask(load_recorded_workload(FIXTURES / "gsm8k-rebase-w8-0.5b.jsonl.gz"))
    assert gsm8k.equivalent("18", "18.0")
    unknown = tmp_path / "other.jsonl"
    node = {"id": 0, "parent": None, "depth": 0}
    unknown.write_text(json.dumps({"id": "q", "task": "mystery", "nodes": [node]}) + "\n")
    exact = RecordedTask(load_recorded_workload(unknown))
    assert exact.equivalent("18", " 18") and not exact.equivalent("18", "18.0")


def test_the_replayed_vote_groups_leaves_as_the_recorded_vote_did() -> None:
    # precalculus/807 ended in leaves "(3, 0)", "(3, 0)" and "(3,0)": one class, as recorded
    recorded = load_recorded_workload(FIXTURES / "math500-rebase-w8-0.5b.jsonl.gz")
    row = recorded.rows[0]
    assert row["id"] == "test/precalculus/807.json"

    async def replay() -> dict[str, Any]:
        ctx, _ = sim_context(
            algorithm="rebase", width=8, preset="artifact", recorded=recorded, spex=False,
            max_depth=recorded.max_depth, algorithm_options={"allocation": "largest-remainder"},
        )  # fmt: skip
        problem = ctx.task.load(limit=1)[0]
        out = await build_search_graph().ainvoke({"problem": asdict(problem)}, context=ctx)
        return dict(out["result"])

    result = run_virtual(replay())
    assert result["answer"] == row["answer"] == "(3, 0)"
    assert "(3,0)" not in result["votes"] and len(result["votes"]) == 4


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
