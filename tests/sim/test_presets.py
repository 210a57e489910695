"""Simulator presets: the paper-calibrated workload, PRM and GPU profiles."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from spex_graph.cli import main
from spex_graph.errors import ConfigError
from spex_graph.rewards.base import ScoreRequest
from spex_graph.sim import H100_7B, SimEngine, SimPRM
from spex_graph.sim.presets import PAPER_WORKLOAD, PRESETS, get_preset, math500_depth_stats
from spex_graph.sim.profiles import llemma_7b, llemma_34b
from spex_graph.sim.workload import stable_hash
from spex_graph.tasks import data_dir

try:
    DATA = data_dir() / "math500.jsonl"
except ConfigError:  # pragma: no cover
    DATA = Path("missing")


def _steps(
    n_problems: int = 60, n_siblings: int = 8, shared: float | None = None
) -> dict[tuple[str, int], list[int]]:
    """Step lengths of sibling first steps, by (problem, depth 1)."""
    out: dict[tuple[str, int], list[int]] = {}
    w = PAPER_WORKLOAD
    if shared is not None:
        w = replace(w, step_shared_fraction=shared)
    for q in range(n_problems):
        pid = f"sim-{q}"
        for s in range(n_siblings):
            step = w.child(pid, None, stable_hash("sib", s) & 0x7FFFFFFF)
            out.setdefault((pid, 1), []).append(step.tokens)
    return out


def test_paper_workload_steps_are_right_skewed_with_a_shared_component() -> None:
    groups = _steps()
    tokens = [t for g in groups.values() for t in g]
    mean = statistics.mean(tokens)
    cv = statistics.pstdev(tokens) / mean
    assert cv >= 0.8  # lognormal sigma 0.8, clipped at 256: CV ~0.9 (normal model: 0.33)
    assert statistics.median(tokens) < mean  # right-skewed
    assert max(tokens) <= 256

    # the (problem, depth) component: with a larger share, sibling groups differ more
    def spread(shared: float) -> float:
        groups = _steps(shared=shared)
        means = [statistics.mean(g) for g in groups.values()]
        within = statistics.mean(statistics.pvariance(g) for g in groups.values())
        return statistics.pvariance(means) / within

    assert spread(0.8) > 2 * spread(0.0)
    # the preset's share is the fit on the committed real-tree fixture
    from spex_graph.bench.record_trees import read_recorded_trees
    from spex_graph.sim.fit import fit_step_split

    fixture = Path(__file__).parents[1] / "fixtures" / "real_trees"
    rows = [row for path in sorted(fixture.glob("*.jsonl.gz")) for row in read_recorded_trees(path)]
    fitted = fit_step_split(rows)["shared_fraction"]
    assert PAPER_WORKLOAD.step_shared_fraction == pytest.approx(fitted, abs=0.005)


def test_paper_workload_depths_are_right_skewed_and_capped() -> None:
    w = PAPER_WORKLOAD
    depths = [len(w.sample_path(f"sim-{q}", s)) for q in range(100) for s in range(5)]
    assert 3.0 <= statistics.mean(depths) <= 6.0
    assert statistics.median(depths) < statistics.mean(depths)
    assert max(depths) <= w.depth_max + 1


def test_latent_prm_is_confident_on_correct_steps_and_low_and_broad_on_wrong_ones() -> None:
    w = PAPER_WORKLOAD
    prm = SimPRM(SimEngine(H100_7B), w)
    right: list[float] = []
    wrong: list[float] = []
    for q in range(40):
        pid = f"sim-{q}"
        for s in range(6):
            texts: list[str] = []
            for step in w.sample_path(pid, s):
                texts.append(step.render())
                score = prm.value(
                    ScoreRequest(
                        question=f"[sim problem={pid}] q", steps=tuple(texts), request_id="r"
                    )
                )
                (right if step.ok else wrong).append(score)
    assert statistics.median(right) > 0.95
    assert statistics.median(wrong) < 0.5
    assert statistics.pstdev(wrong) > 0.15  # broad
    # same path, same score (deterministic)
    again = prm.value(
        ScoreRequest(question="[sim problem=sim-0] q", steps=(texts[0],), request_id="r")
    )
    assert again == prm.value(
        ScoreRequest(question="[sim problem=sim-0] q", steps=(texts[0],), request_id="r")
    )


def test_artifact_profiles_follow_the_llemma_configs_and_eager_decode() -> None:
    policy, reward = get_preset("artifact").profiles("h100")
    assert policy.kv_bytes_per_token == 512 * 1024
    assert reward.kv_bytes_per_token == 192 * 1024
    assert policy.decode_step_time(1, 300) == pytest.approx(0.0115, abs=0.0005)
    # a 34B PRM leaves little KV room on an 80 GB card, much more on an H200
    assert 20_000 < llemma_34b("h100").kv_capacity_tokens < 35_000
    assert llemma_34b("h200").kv_capacity_tokens > 10 * llemma_34b("h100").kv_capacity_tokens
    assert llemma_7b("h200").decode_step_time(1) < llemma_7b("h100").decode_step_time(1)
    assert set(PRESETS) == {"artifact", "modern", "legacy"}
    for preset in PRESETS.values():
        assert preset.sources


@pytest.mark.skipif(not DATA.exists(), reason="MATH-500 data not present")
def test_depth_figures_are_measured_from_math500_solutions() -> None:
    stats = math500_depth_stats(str(DATA))
    assert stats["median"] == 3
    assert stats["log_sd"] == pytest.approx(PAPER_WORKLOAD.depth_sigma, abs=0.01)


def test_unknown_preset_and_gpu_are_one_line_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "--preset", "turbo", "--queries", "1"]) == 2
    assert "unknown --preset 'turbo'" in capsys.readouterr().err
    assert main(["bench", "--gpu", "a100", "--queries", "1"]) == 2
    assert "unknown --gpu 'a100'" in capsys.readouterr().err


def test_sim_context_takes_a_preset_and_a_gpu() -> None:
    from spex_graph.sim import run_queries, run_virtual, sim_context

    async def main() -> tuple[list[dict], dict]:  # type: ignore[type-arg]
        ctx, engines = sim_context("rebase", width=4, preset="artifact", gpu="h200", spex=False)
        assert ctx.max_depth == 25
        return await run_queries(ctx, ctx.task.load(1)), engines

    results, engines = run_virtual(main())
    assert results[0]["answer"] is not None
    assert (
        "H200" in engines["policy"].profile.name and "Llemma-7B" in engines["policy"].profile.name
    )
    assert "Llemma-34B" in engines["reward"].profile.name
