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
