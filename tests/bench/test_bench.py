"""`spex bench` on the simulated engine: exact, repeatable ratios, asserted from the JSON."""

from __future__ import annotations

import json

from spex_graph.cli import main

ARGS = [
    "bench", "--backend", "sim", "--algorithm", "rebase", "--width", "8", "--queries", "6",
    "--concurrency", "2", "--modes", "baseline,spex,spec-only,budget-only,et-only,oracle",
]  # fmt: skip


def run(tmp_path, name: str, extra: list[str] | None = None) -> dict:  # type: ignore[no-untyped-def, type-arg]
    out = tmp_path / f"{name}.json"
    assert main([*ARGS, "--json", str(out), *(extra or [])]) == 0
    return json.loads(out.read_text())


def strip_wall(report: dict) -> dict:  # type: ignore[type-arg]
    for metrics in report["results"].values():
        metrics.pop("wall_s")
    return report


def test_exact_mode_answers_equal_the_baseline_query_by_query(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    report = run(tmp_path, "a", ["--plot", str(tmp_path / "t.png")])
    results = report["results"]
    baseline = results["baseline"]["answers"]
    for mode in ("spex", "spec-only", "budget-only", "oracle"):
        assert results[mode]["answers"] == baseline, mode
        assert results[mode]["same_answers_as_baseline"] == 1.0
    # the virtual clock makes ratios exact: speculation must pay on this workload
    assert report["speedup"] > 1.1
    assert report["oracle_speedup"] >= report["speedup"] * 0.99
    assert 0 < results["spex"]["oracle_fraction"] <= 1.01
    assert results["spex"]["hit_rate"] > 0.3
    assert results["baseline"]["tokens_speculative_used"] == 0
    assert results["oracle"]["hit_rate"] == 1.0
    assert (tmp_path / "t.png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "speedup" in table and "oracle" in table


def test_the_same_command_gives_the_same_numbers_twice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = strip_wall(run(tmp_path, "a"))
    b = strip_wall(run(tmp_path, "b"))
    assert a == b


def test_unknown_mode_and_profile_are_one_line_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "--modes", "baseline,turbo"]) == 2
    assert "unknown mode 'turbo'" in capsys.readouterr().err
    assert main(["bench", "--profile", "tpu"]) == 2
    assert "unknown profile" in capsys.readouterr().err


def test_trace_is_saved_and_rendered_as_png_and_svg(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "trace.json"
    args = ["bench", "--backend", "sim", "--width", "4", "--queries", "2", "--modes", "spex"]
    assert main([*args, "--trace", str(trace)]) == 0
    data = json.loads(trace.read_text())["queries"]
    assert set(data) == {"sim-0", "sim-1"}
    assert data["sim-0"]["records"] and data["sim-0"]["tree"]["nodes"]
    for out in ("t.png", "t.svg"):
        assert main(["trace", str(trace), "--query", "sim-1", "--out", str(tmp_path / out)]) == 0
        assert (tmp_path / out).stat().st_size > 5_000
    assert "<svg" in (tmp_path / "t.svg").read_text()[:500]
    assert main(["trace", str(tmp_path / "t.png")]) == 2
    assert "not a spex trace" in capsys.readouterr().err
    assert main(["trace", str(trace), "--query", "nope"]) == 2


def test_waste_counts_aborted_work_and_equals_the_extra_engine_tokens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # exact mode, no early termination: SPEX's used work is the baseline's work, so every
    # extra token the policy engine generated (finished or aborted) is waste, and the waste
    # counted from the traces plus the engine's log of aborted requests must equal it.
    args = [
        "bench", "--backend", "sim", "--preset", "artifact", "--algorithm", "rebase",
        "--width", "8", "--queries", "6", "--concurrency", "2",
        "--modes", "baseline,spex,spec-only",
    ]  # fmt: skip
    out = tmp_path / "w.json"
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    results = report["results"]
    base = results["baseline"]
    assert base["tokens_speculative_wasted"] == 0 and base["tokens_aborted"] == 0
    assert base["engine_tokens"] == base["tokens_primary"]
    for mode in ("spex", "spec-only"):
        m = results[mode]
        assert m["answers"] == base["answers"]
        assert m["tokens_primary"] + m["tokens_speculative_used"] == base["tokens_primary"]
        assert m["tokens_aborted"] > 0  # speculation the search dropped midway
        assert m["tokens_speculative_wasted"] == m["engine_tokens"] - base["engine_tokens"]
    stats = report["workload_stats"]
    assert stats["preset"] == "artifact"
    assert stats["step_tokens_cv"] >= 0.8
    assert stats["step_tokens_median"] < stats["step_tokens_mean"] < stats["step_tokens_p90"]
    assert stats["steps_mean"] >= 1


def test_a_failed_query_is_never_the_same_answer() -> None:
    from spex_graph.bench.report import mode_metrics
    from spex_graph.bench.runner import ModeRun

    ok = [{"query_id": "a", "answer": None, "latency_s": 1.0, "tokens_primary": 1,
           "tokens_speculative_used": 0, "tokens_speculative_wasted": 0}]  # fmt: skip
    failed = [{"query_id": "a", "error": "boom"}]
    base = ModeRun("baseline", ok, {}, {}, 0.0, 1.0)
    assert (
        mode_metrics(ModeRun("spex", failed, {}, {}, 0.0, 1.0), base)["same_answers_as_baseline"]
        == 0.0
    )
    assert (
        mode_metrics(ModeRun("spex", ok, {}, {}, 0.0, 1.0), base)["same_answers_as_baseline"] == 1.0
    )
