"""The results-matrix script: one cell end to end, markdown and JSON written."""

from __future__ import annotations

import json
from pathlib import Path

from spex_graph.bench.matrix import MatrixCell, cell_queries, main, markdown


def test_one_cell_writes_json_and_a_markdown_row(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["--out", str(out), "--presets", "artifact", "--algorithms", "rebase",
            "--concurrency", "1", "--queries", "2", "--no-spec-decoding"]  # fmt: skip
    assert main(args) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    assert len(rows) == 1 and rows[0]["spex_speedup"] > 1.0
    table = out.with_suffix(".md").read_text()
    assert "| artifact | h100 | rebase | 1 |" in table


def test_a_slower_spex_is_marked_in_the_table() -> None:
    row = {"preset": "artifact", "gpu": "h100", "algorithm": "rebase", "concurrency": 16,
           "baseline_mean_s": 11.0, "spex_speedup": 0.5, "oracle_speedup": 1.0,
           "spex_of_oracle": 0.5, "spex_waste": 0.4, "sd_speedup": None,
           "spex_sd_speedup": None}  # fmt: skip
    assert "**0.50x slower**" in markdown([row])


def test_a_slower_p90_and_spex_sd_below_sd_alone_are_marked() -> None:
    row = {"preset": "artifact", "gpu": "h100", "algorithm": "bestfirst", "concurrency": 4,
           "baseline_mean_s": 20.5, "spex_speedup": 1.05, "oracle_speedup": 2.0,
           "spex_of_oracle": 0.5, "spex_waste": 0.4, "sd_speedup": 2.2,
           "spex_sd_speedup": 2.1, "p90_slower": True, "sd_p90_slower": False}  # fmt: skip
    table = markdown([row])
    assert "**1.05x, p90 slower**" in table and "**2.10x slower**" in table
    row.update(p90_slower=False, spex_sd_speedup=2.3, sd_p90_slower=True)
    assert "| 1.05x |" in markdown([row]) and "**2.30x, p90 slower**" in markdown([row])


def test_a_cell_runs_at_least_one_full_wave() -> None:
    assert cell_queries(MatrixCell("modern", "h100", "beam", 64), 16) == 64
    assert cell_queries(MatrixCell("modern", "h100", "beam", 1), 16) == 16
