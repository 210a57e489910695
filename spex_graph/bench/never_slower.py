"""The "never slower" proof matrix: every SPEX mode against the baseline, on every
simulator preset and GPU, at light to heavy load, for REBASE and MCTS.

    python -m spex_graph.bench.never_slower --json benchmarks/never-slower.json --markdown

Each cell is one `spex bench` run on the simulator (virtual clock: exact and
repeatable). A cell passes when `spex` is at least as fast as the baseline in mean
latency (speedup >= 1.00) and its p90 latency is no worse than the baseline's.
`--presets`, `--gpus`, `--algorithms` and `--concurrency` narrow the matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from spex_graph.bench.matrix import ALGORITHM_SETTINGS, add_axis_arguments, axis_cells
from spex_graph.bench.report import build_report
from spex_graph.bench.runner import BenchSpec, run_bench

MODES = "baseline,spec-only,budget-only,spex"


def queries_for(concurrency: int) -> int:
    """Queries per cell: 8 at light load, else one query per slot (one full wave)."""
    return max(8, concurrency)


def run_cell(preset: str, gpu: str, algorithm: str, concurrency: int) -> dict[str, Any]:
    """One cell: the four modes on one setting; returns the per-mode summary."""
    # REBASE width 16 (the paper's main setting); MCTS 4 children x 10 rollouts
    settings = ALGORITHM_SETTINGS[algorithm]
    spec = BenchSpec(
        algorithm=algorithm,
        width=int(settings["width"]),
        queries=queries_for(concurrency),
        concurrency=concurrency,
        modes=MODES,
        preset=preset,
        gpu=gpu,
        algorithm_options=dict(settings.get("algorithm_options", {})),
    )
    started = time.monotonic()
    report = build_report(spec, run_bench(spec, progress=lambda _line: None))
    modes = report["results"]
    base = modes["baseline"]
    cell: dict[str, Any] = {
        "preset": preset,
        "gpu": gpu,
        "algorithm": algorithm,
        "width": spec.width,
        "concurrency": concurrency,
        "queries": spec.queries,
        "wall_s": round(time.monotonic() - started, 1),
        "modes": {},
    }
    for mode, m in modes.items():
        cell["modes"][mode] = {
            "speedup": m["speedup"],
            "latency_mean_s": m["latency_mean_s"],
            "latency_p50_s": m["latency_p50_s"],
            "latency_p90_s": m["latency_p90_s"],
            "latency_p95_s": m["latency_p95_s"],
            "same_answers_as_baseline": m["same_answers_as_baseline"],
            "wasted_fraction": m["wasted_fraction"],
            "failed": m["failed"],
        }
    spex = modes["spex"]
    cell["spex_ok"] = (spex["speedup"] or 0.0) >= 1.0 and (
        spex["latency_p90_s"] <= base["latency_p90_s"] + 1e-9
    )
    return cell


def format_markdown(cells: list[dict[str, Any]]) -> str:
    """One row per cell: speedups of each mode, p90 of baseline and spex, pass/fail."""
    head = (
        "| preset | GPU | algorithm | conc. | spec-only | budget-only | spex "
        "| p90 base s | p90 spex s | p95 base s | p95 spex s | ok |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
    )
    rows = []
    for c in cells:
        m = c["modes"]
        rows.append(
            f"| {c['preset']} | {c['gpu']} | {c['algorithm']} w{c['width']} "
            f"| {c['concurrency']} "
            f"| {m['spec-only']['speedup']:.2f}x | {m['budget-only']['speedup']:.2f}x "
            f"| **{m['spex']['speedup']:.2f}x** "
            f"| {m['baseline']['latency_p90_s']:.2f} | {m['spex']['latency_p90_s']:.2f} "
            f"| {m['baseline']['latency_p95_s']:.2f} | {m['spex']['latency_p95_s']:.2f} "
            f"| {'yes' if c['spex_ok'] else 'NO'} |"
        )
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the matrix; exit 1 when any cell fails."""
    parser = argparse.ArgumentParser(prog="python -m spex_graph.bench.never_slower")
    add_axis_arguments(parser, gpus="h100,h200", algorithms="rebase,mcts")
    parser.add_argument("--json", help="write every cell here")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    cells: list[dict[str, Any]] = []
    for axis in axis_cells(args):
        cell = run_cell(axis.preset, axis.gpu, axis.algorithm, axis.concurrency)
        cells.append(cell)
        spex = cell["modes"]["spex"]
        print(
            f"{axis.preset} {axis.gpu} {axis.algorithm} c{axis.concurrency}: "
            f"spex {spex['speedup']:.2f}x "
            f"spec-only {cell['modes']['spec-only']['speedup']:.2f}x "
            f"p90 {spex['latency_p90_s']:.2f}/"
            f"{cell['modes']['baseline']['latency_p90_s']:.2f} "
            f"{'ok' if cell['spex_ok'] else 'FAIL'} ({cell['wall_s']}s)",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps({"cells": cells}, indent=1))
    if args.markdown:
        print(format_markdown(cells))
    return 0 if all(c["spex_ok"] for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
