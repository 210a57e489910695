"""The results matrix: presets x GPUs x algorithms x concurrency on the simulator.

    python -m spex_graph.bench.matrix --out runs/matrix \\
        --presets artifact,modern --gpus h100,h200 \\
        --algorithms rebase,ets,beam,bestfirst,mcts --concurrency 1,4,16,64 --queries 32

Each cell is one `spex bench --backend sim` run with the modes baseline, spex and
oracle, plus baseline+sd and spex+sd (EAGLE-3 token-level speculative decoding):
the same queries and seeds side by side on the virtual clock. Writes
`<out>.json` (every cell's full report), `<out>.md` (one table row per cell) and
`<out>.png` (SPEX's speedup per cell, with the oracle's). Cells where SPEX is
slower than the baseline are marked in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spex_graph.bench.report import build_report
from spex_graph.bench.runner import BenchSpec, run_bench

__all__ = [
    "ALGORITHM_SETTINGS",
    "MatrixCell",
    "add_axis_arguments",
    "axis_cells",
    "markdown",
    "run_matrix",
]

ALGORITHM_SETTINGS: dict[str, dict[str, Any]] = {
    "rebase": {"width": 16},
    "ets": {"width": 16},
    "beam": {"width": 8},
    "bestfirst": {"width": 8},
    "mcts": {"width": 4, "algorithm_options": {"rollouts": 10}},
}
"""Width (and options) per algorithm: REBASE's 16 (Wu et al.), the others' defaults."""


def add_axis_arguments(parser: argparse.ArgumentParser, *, gpus: str, algorithms: str) -> None:
    """The matrix axes both matrix commands take (comma-separated lists)."""
    parser.add_argument("--presets", default="artifact,modern")
    parser.add_argument("--gpus", default=gpus)
    parser.add_argument("--algorithms", default=algorithms)
    parser.add_argument("--concurrency", default="1,4,16,64")


def axis_cells(args: argparse.Namespace) -> list[MatrixCell]:
    """Every (preset, GPU, algorithm, concurrency) cell of the parsed axes, in order."""

    def split(text: str) -> list[str]:
        return [x.strip() for x in text.split(",") if x.strip()]

    return [
        MatrixCell(p, g, a, int(c))
        for p in split(args.presets)
        for g in split(args.gpus)
        for a in split(args.algorithms)
        for c in split(args.concurrency)
    ]


@dataclass(frozen=True)
class MatrixCell:
    """One cell of the matrix."""

    preset: str
    gpu: str
    algorithm: str
    concurrency: int


def cell_queries(cell: MatrixCell, queries: int) -> int:
    """Queries a cell runs: `queries`, and at least one full wave (its concurrency),
    so that a concurrency-64 cell has 64 queries in flight."""
    return max(queries, cell.concurrency)


def run_cell(cell: MatrixCell, queries: int, spec_decoding: bool = True) -> dict[str, Any]:
    """The bench report of one cell."""
    settings = ALGORITHM_SETTINGS.get(cell.algorithm, {})
    spec = BenchSpec(
        algorithm=cell.algorithm,
        width=int(settings.get("width", 8)),
        algorithm_options=dict(settings.get("algorithm_options", {})),
        queries=cell_queries(cell, queries),
        concurrency=cell.concurrency,
        modes="baseline,spex,oracle",
        preset=cell.preset,
        gpu=cell.gpu,
        spec_decoding="eagle3" if spec_decoding else None,
    )
    return build_report(spec, run_bench(spec, progress=lambda _: None))


def run_matrix(
    cells: list[MatrixCell], queries: int, *, spec_decoding: bool = True, log: Any = print
) -> list[dict[str, Any]]:
    """Run every cell; returns one summary row per cell (with the full report)."""
    rows = []
    for cell in cells:
        started = time.perf_counter()
        report = run_cell(cell, queries, spec_decoding)
        r = report["results"]
        row = {
            **vars(cell),
            "queries": cell_queries(cell, queries),
            "baseline_mean_s": r["baseline"]["latency_mean_s"],
            "spex_speedup": r["spex"]["speedup"],
            "oracle_speedup": r["oracle"]["speedup"],
            "spex_of_oracle": r["spex"]["oracle_fraction"],
            "spex_waste": r["spex"]["wasted_fraction"],
            "same_answers": r["spex"]["same_answers_as_baseline"],
            "sd_speedup": r.get("baseline+sd", {}).get("speedup"),
            "spex_sd_speedup": r.get("spex+sd", {}).get("speedup"),
            "p90_slower": _p90_slower(r, "spex", "baseline"),
            "sd_p90_slower": _p90_slower(r, "spex+sd", "baseline+sd"),
            "step_tokens_cv": report["workload_stats"]["step_tokens_cv"],
            "wall_s": time.perf_counter() - started,
            "report": report,
        }
        rows.append(row)
        log(
            f"{cell.preset} {cell.gpu} {cell.algorithm} c={cell.concurrency}: "
            f"spex {row['spex_speedup']:.2f}x oracle {row['oracle_speedup']:.2f}x "
            f"({row['wall_s']:.0f}s)"
        )
    return rows


def _p90_slower(results: dict[str, Any], mode: str, against: str) -> bool:
    """Whether `mode`'s p90 latency is above `against`'s (False where either is absent)."""
    if mode not in results or against not in results:
        return False
    return bool(results[mode]["latency_p90_s"] > results[against]["latency_p90_s"])


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _marked(speedup: float | None, against: float | None, p90_slower: bool) -> str:
    """`speedup`, in bold with the reason where it is slower than `against` (mean)
    or its p90 is."""
    text = _x(speedup)
    if speedup is not None and against is not None and speedup < against:
        return f"**{text} slower**"
    return f"**{text}, p90 slower**" if p90_slower else text


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per cell. SPEX slower than the baseline (mean or p90) is marked
    in bold, and so is SPEX+SD slower than SD alone."""
    lines = [
        "| preset | GPU | algorithm | c | baseline s | SPEX | oracle | SPEX of oracle "
        "| waste | +SD | SPEX+SD |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spex = _marked(row["spex_speedup"], 1.0, row.get("p90_slower", False))
        spex_sd = _marked(
            row["spex_sd_speedup"], row["sd_speedup"], row.get("sd_p90_slower", False)
        )
        lines.append(
            f"| {row['preset']} | {row['gpu']} | {row['algorithm']} | {row['concurrency']} "
            f"| {row['baseline_mean_s']:.2f} | {spex} | {_x(row['oracle_speedup'])} "
            f"| {100 * (row['spex_of_oracle'] or 0):.0f}% | {100 * row['spex_waste']:.0f}% "
            f"| {_x(row['sd_speedup'])} | {spex_sd} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bars of SPEX's and the oracle's speedup per cell (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['preset']}/{r['gpu']}\n{r['algorithm']} c{r['concurrency']}" for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(rows)), 4.0))
    ax.bar([x - 0.2 for x in xs], [r["spex_speedup"] for r in rows], 0.4, label="SPEX")
    ax.bar([x + 0.2 for x in xs], [r["oracle_speedup"] for r in rows], 0.4, label="oracle")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("speedup over the baseline")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: run the matrix, write JSON, markdown and a plot."""
    parser = argparse.ArgumentParser(prog="python -m spex_graph.bench.matrix")
    parser.add_argument("--out", default="runs/matrix")
    add_axis_arguments(parser, gpus="h100", algorithms="rebase,ets,beam,bestfirst,mcts")
    parser.add_argument(
        "--queries", type=int, default=32, help="queries per cell (at least its concurrency)"
    )
    parser.add_argument("--no-spec-decoding", action="store_true")
    args = parser.parse_args(argv)
    rows = run_matrix(axis_cells(args), args.queries, spec_decoding=not args.no_spec_decoding)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))
    try:
        print(f"wrote {plot(rows, out.with_suffix('.png'))}")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'spex-graph[plot]')")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
