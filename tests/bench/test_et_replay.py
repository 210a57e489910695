"""`spex et-replay`: early-termination rules replayed on recorded search trees.

A hand-built recording checks the mechanics exactly (where each rule stops,
what it saves); the snapshot of real recordings (REBASE w8 on the embedded
0.5B engine, tests/fixtures/real_trees/) runs through the real command as a
subprocess.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spex_graph.bench.et_replay import ReplaySettings, load_recording, replay, replay_one

REAL = sorted((Path(__file__).parent.parent / "fixtures" / "real_trees").glob("*.jsonl.gz"))


def node(
    i: int, parent: int | None, depth: int, tokens: int, reward: float | None,
    answer: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": i, "parent": parent, "depth": depth, "completion_tokens": tokens,
        "reward": reward, "status": "active" if answer is None else "terminal",
        "answer": answer, "correct": None if answer is None else answer == "7",
    }  # fmt: skip


def skewed_row() -> dict[str, Any]:
    """REBASE width 4: after layer 2, three confident leaves say 7 and one branch is
    live; layer 3 finishes it with a wrong answer worth 0.95."""
    nodes = [
        node(0, None, 0, 0, None),
        node(1, 0, 1, 10, 0.96), node(2, 0, 1, 10, 0.97),
        node(3, 0, 1, 10, 0.98), node(4, 0, 1, 10, 0.5),
        node(5, 1, 2, 20, 0.96, "7"), node(6, 2, 2, 20, 0.97, "7"),
        node(7, 3, 2, 20, 0.98, "7"), node(8, 4, 2, 20, 0.9),
        node(9, 8, 3, 100, 0.95, "5"),
    ]  # fmt: skip
    return {"id": "p0", "task": "gsm8k", "gold": "7", "algorithm": "rebase", "width": 4,
            "answer": "7", "correct": True, "nodes": nodes}  # fmt: skip


def write(tmp_path: Path, rows: list[dict[str, Any]], name: str = "rec.jsonl.gz") -> Path:
    path = tmp_path / name
    with gzip.open(path, "wt") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def test_rules_stop_where_their_bounds_say_and_count_the_tokens_they_skip(tmp_path: Path) -> None:
    recs = load_recording(write(tmp_path, [skewed_row()]))
    report = replay(recs, ReplaySettings(mixes=(0.0,)), "hand-built")
    rows = {r.rule: r for r in report.rows}
    assert report.recorded_mismatch == 0
    assert rows["none"].fired == 0 and rows["none"].tokens_saved == 0.0
    # paper: W1 - W2 = 2.91 > 1 x 1 remaining x 0 (no runner-up) and median 0.97 > 0.9
    # safe: W1 - W2 = 2.91 > 1 remaining leaf x w_max 1.0; both skip layer 3 (100 of 220)
    for rule in ("paper", "safe"):
        assert rows[rule].fired == 1 and rows[rule].agreement == 1.0
        assert rows[rule].tokens_saved == pytest.approx(100 / 220)
    # pruning compares live branches only: the single one left trails nobody
    assert rows["pruning"].fired == 0


def test_pruning_drops_the_subtree_of_a_trailing_branch(tmp_path: Path) -> None:
    nodes = [
        node(0, None, 0, 0, None), node(1, 0, 1, 10, 0.9), node(2, 0, 1, 10, 0.3),
        node(3, 1, 2, 20, 0.9), node(4, 2, 2, 20, 0.9),
        node(5, 3, 3, 30, 0.9, "7"), node(6, 4, 3, 50, 0.9, "5"),
    ]  # fmt: skip
    row = {"id": "p1", "task": "gsm8k", "gold": "7", "algorithm": "rebase", "width": 2,
           "answer": "7", "correct": True, "nodes": nodes}  # fmt: skip
    report = replay(load_recording(write(tmp_path, [row])), ReplaySettings(mixes=(0.0,)))
    pruning = {r.rule: r for r in report.rows}["pruning"]
    # at depth 2 branch 4 (min path reward 0.3) trails branch 3 (0.9) by 0.6 > 0.3
    assert pruning.fired == 1 and pruning.agreement == 1.0
    assert pruning.tokens_saved == pytest.approx(50 / 140)


def test_safe_waits_while_the_remaining_leaves_could_still_overturn_the_vote(
    tmp_path: Path,
) -> None:
    row = skewed_row()
    for n in row["nodes"][5:8]:
        n["reward"] = 0.6  # W1 = 1.8 from three 0.6 leaves
    row["width"] = 6  # 3 more leaves may come, all below the live branch (node 8)
    for strong, stops in ((0.5, True), (0.99, False)):
        row["nodes"][4]["reward"] = row["nodes"][8]["reward"] = strong
        report = replay(load_recording(write(tmp_path, [row])), ReplaySettings(mixes=(0.0,)))
        # each future leaf weighs at most the live branch's path min: 3 x 0.5 < 1.8 <= 3 x 0.99
        assert {r.rule: r.fired for r in report.rows}["safe"] == int(stops)


def test_a_perfect_reward_mix_votes_for_the_correct_leaf(tmp_path: Path) -> None:
    row = skewed_row()
    row["gold"], row["answer"] = "5", "7"  # the lone deep leaf is the correct one
    for n in row["nodes"]:
        n["correct"] = None if n["answer"] is None else n["answer"] == "5"
    report = replay(load_recording(write(tmp_path, [row])), ReplaySettings(mixes=(0.0, 1.0)))
    acc = {(r.mix, r.rule): r.accuracy for r in report.rows}
    assert acc[(0.0, "none")] == 0.0 and acc[(1.0, "none")] == 1.0
    # the paper rule stops on the confident wrong majority at q = 0
    assert acc[(0.0, "paper")] == 0.0


@pytest.mark.skipif(not REAL, reason="no recorded trees in tests/fixtures/real_trees")
def test_the_command_replays_the_real_recordings(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    proc = subprocess.run(
        [sys.executable, "-m", "spex_graph.cli", "et-replay", *map(str, REAL),
         "--mix", "0,0.5,1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "reward mix q" in proc.stdout and "safe" in proc.stdout
    reports = json.loads(out.read_text())
    for report in reports:
        assert report["recorded_mismatch"] == 0  # the replay reproduces every recorded answer
        rows = {(r["mix"], r["rule"]): r for r in report["rows"]}
        for q in (0.0, 0.5, 1.0):
            assert rows[(q, "none")]["tokens_saved"] == 0.0
            assert rows[(q, "none")]["agreement"] == 1.0
            assert rows[(q, "safe")]["agreement"] == 1.0  # proved: never changes the answer
        # a perfect process reward can only help the full search's vote
        assert rows[(1.0, "none")]["accuracy"] >= rows[(0.0, "none")]["accuracy"]


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "spex_graph.cli", "et-replay", str(tmp_path / "nope.jsonl")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "spex record-trees" in missing.stderr
    row = skewed_row()
    row["algorithm"] = "mcts"
    mcts = subprocess.run(
        [sys.executable, "-m", "spex_graph.cli", "et-replay", str(write(tmp_path, [row]))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert mcts.returncode == 2 and "rebase, ets" in mcts.stderr
    bad_mix = subprocess.run(
        [sys.executable, "-m", "spex_graph.cli", "et-replay", str(write(tmp_path, [skewed_row()])),
         "--mix", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad_mix.returncode == 2 and "--mix" in bad_mix.stderr


@pytest.mark.parametrize("rule", ["paper", "safe"])
def test_the_replay_equals_live_early_termination_query_by_query(tmp_path: Path, rule: str) -> None:
    """Record full searches on the simulator's artifact preset, replay a rule, and run
    the same queries live with that rule: same stops, answers and tokens."""
    import dataclasses

    from spex_graph.bench.record_trees import record_problem
    from spex_graph.graph import build_search_graph
    from spex_graph.policies import SpexConfig
    from spex_graph.sim import sim_context
    from spex_graph.sim.clock import run_virtual
    from spex_graph.sim.presets import get_preset

    preset = get_preset("artifact")
    policy, reward = preset.profiles("h100")

    def context(spex: SpexConfig) -> Any:
        return sim_context(
            algorithm="rebase", width=16, profile=policy, reward_profile=reward,
            workload=preset.workload, shared_engine=preset.shared_engine, spex=spex,
            max_depth=preset.max_depth,
        )[0]  # fmt: skip

    async def record() -> list[dict[str, Any]]:
        ctx, graph = context(SpexConfig.baseline()), build_search_graph()
        return [await record_problem(graph, ctx, p) for p in ctx.task.load(limit=12)]

    async def live() -> list[dict[str, Any]]:
        ctx = context(SpexConfig(speculation=False, budget=False, early_termination=rule))
        graph, outs = build_search_graph(), []
        for p in ctx.task.load(limit=12):
            state = {"problem": dataclasses.asdict(p), "query_id": p.id}
            outs.append((await graph.ainvoke(state, context=ctx))["result"])
        return outs

    recs = load_recording(write(tmp_path, run_virtual(record())))
    outs = run_virtual(live())
    fired = 0
    for rec, out in zip(recs, outs, strict=True):
        replayed = replay_one(rec, rule, ReplaySettings())
        assert replayed.fired == (out["stop_reason"] == "early-stop"), rec.problem_id
        assert replayed.answer == out["answer"], rec.problem_id
        assert replayed.tokens == out["tokens_primary"], rec.problem_id
        fired += replayed.fired
    assert fired >= 6  # the preset's confident PRM: most queries stop early
