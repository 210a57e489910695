"""`spex bench`: baseline vs SPEX (and ablations and the oracle) side by side, one process."""

from spex_graph.bench.modes import MODES, parse_modes, spex_config
from spex_graph.bench.report import build_report, format_table
from spex_graph.bench.runner import BenchSpec, ModeRun, run_bench

__all__ = [
    "MODES",
    "BenchSpec",
    "ModeRun",
    "build_report",
    "format_table",
    "parse_modes",
    "run_bench",
    "spex_config",
]
