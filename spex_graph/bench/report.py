"""Turn mode runs into metrics, a printed table and the JSON report.

JSON schema (`spex bench --json`):

    {
      "spec": {...BenchSpec fields...},
      "speedup": float | null,          # spex mean latency vs baseline (baseline / spex)
      "oracle_speedup": float | null,   # oracle mean latency vs baseline
      "results": {
        "<mode>": {
          "description": str,
          "queries": int, "failed": int,
          "latency_mean_s", "latency_p50_s", "latency_p90_s", "makespan_s": float,
          "throughput_qps": float,
          "accuracy": float | null,                 # null when no gold answers
          "tokens_primary", "tokens_speculative_used", "tokens_speculative_wasted": int,
          "wasted_fraction": float,                 # wasted / all generated tokens
          "hit_rate": float,                        # used / submitted speculative requests
          "engine_utilisation": float | null,       # sim: policy engine busy / makespan
          "overhead_fraction": float,               # query time with nothing in flight
          "speedup": float | null,                  # baseline mean / this mean
          "oracle_fraction": float | null,          # speedup / oracle speedup
          "same_answers_as_baseline": float,        # fraction of queries
          "early_stopped": int,                     # queries that stopped early
          "answers": [str | null, ...],             # in query order
          "latencies_s": [float, ...],
          "wall_s": float                           # real seconds on this machine
        }, ...
      }
    }
"""

from __future__ import annotations

import statistics
from typing import Any

from spex_graph.bench.modes import MODES
from spex_graph.bench.runner import BenchSpec, ModeRun
from spex_graph.runtime.trace import RequestRecord


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _covered(records: list[RequestRecord]) -> float:
    spans = sorted(
        (r.started_at, r.finished_at)
        for r in records
        if r.started_at is not None and r.finished_at is not None
    )
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def mode_metrics(run: ModeRun, baseline: ModeRun | None) -> dict[str, Any]:
    """Metrics of one mode (see the module docstring)."""
    ok = [r for r in run.results if "error" not in r]
    latencies = [float(r["latency_s"]) for r in ok]
    graded = [r["correct"] for r in ok if r.get("correct") is not None]
    primary = sum(int(r["tokens_primary"]) for r in ok)
    used = sum(int(r["tokens_speculative_used"]) for r in ok)
    wasted = sum(int(r["tokens_speculative_wasted"]) for r in ok)
    spec_requests = hits = 0
    overheads: list[float] = []
    for r in ok:
        records = run.records.get(r["query_id"], [])
        for rec in records:
            if rec.kind == "policy" and rec.speculative:
                spec_requests += 1
                hits += rec.outcome == "used"
        if r["latency_s"] > 0:
            overheads.append(max(0.0, 1.0 - _covered(records) / r["latency_s"]))
    makespan = run.makespan
    answers = [r.get("answer") for r in run.results]
    same = 1.0
    if baseline is not None:
        base_answers = [r.get("answer") for r in baseline.results]
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True)) / max(
            len(answers), 1
        )
    busy = (run.engine_busy or {}).get("policy")
    return {
        "description": MODES.get(run.mode, ""),
        "queries": len(run.results),
        "failed": len(run.results) - len(ok),
        "latency_mean_s": statistics.mean(latencies) if latencies else 0.0,
        "latency_p50_s": _percentile(latencies, 0.5),
        "latency_p90_s": _percentile(latencies, 0.9),
        "makespan_s": makespan,
        "throughput_qps": len(ok) / makespan if makespan > 0 else 0.0,
        "accuracy": sum(graded) / len(graded) if graded else None,
        "tokens_primary": primary,
        "tokens_speculative_used": used,
        "tokens_speculative_wasted": wasted,
        "wasted_fraction": wasted / max(primary + used + wasted, 1),
        "hit_rate": hits / spec_requests if spec_requests else 0.0,
        "engine_utilisation": busy / makespan if busy is not None and makespan > 0 else None,
        "overhead_fraction": statistics.mean(overheads) if overheads else 0.0,
        "speedup": None,
        "oracle_fraction": None,
        "same_answers_as_baseline": same,
        "early_stopped": sum(r.get("stop_reason") == "early-stop" for r in ok),
        "answers": answers,
        "latencies_s": latencies,
        "wall_s": run.wall_s,
    }


def build_report(spec: BenchSpec, runs: list[ModeRun]) -> dict[str, Any]:
    """The JSON report: per-mode metrics plus speedups against baseline and oracle."""
    baseline = next((r for r in runs if r.mode == "baseline"), None)
    results = {run.mode: mode_metrics(run, baseline) for run in runs}
    base_mean = results["baseline"]["latency_mean_s"] if "baseline" in results else None
    for metrics in results.values():
        if base_mean and metrics["latency_mean_s"] > 0:
            metrics["speedup"] = base_mean / metrics["latency_mean_s"]
    oracle = results.get("oracle", {}).get("speedup")
    if oracle:
        for metrics in results.values():
            if metrics["speedup"] is not None:
                metrics["oracle_fraction"] = metrics["speedup"] / oracle
    return {
        "spec": {k: v for k, v in vars(spec).items()},
        "speedup": results.get("spex", {}).get("speedup"),
        "oracle_speedup": oracle,
        "results": results,
    }


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the report, one row per mode."""
    cols = [
        ("mode", "{:<11}", lambda m, k: k),
        ("mean s", "{:>8}", lambda m, k: f"{m['latency_mean_s']:.2f}"),
        ("p50 s", "{:>7}", lambda m, k: f"{m['latency_p50_s']:.2f}"),
        ("p90 s", "{:>7}", lambda m, k: f"{m['latency_p90_s']:.2f}"),
        ("makespan", "{:>9}", lambda m, k: f"{m['makespan_s']:.1f}"),
        ("q/s", "{:>6}", lambda m, k: f"{m['throughput_qps']:.2f}"),
        ("acc", "{:>5}", lambda m, k: "-" if m["accuracy"] is None else f"{m['accuracy']:.2f}"),
        ("tok prim", "{:>9}", lambda m, k: str(m["tokens_primary"])),
        ("spec used", "{:>9}", lambda m, k: str(m["tokens_speculative_used"])),
        ("wasted", "{:>8}", lambda m, k: str(m["tokens_speculative_wasted"])),
        ("waste%", "{:>6}", lambda m, k: f"{100 * m['wasted_fraction']:.0f}"),
        ("hit", "{:>5}", lambda m, k: f"{m['hit_rate']:.2f}"),
        (
            "util",
            "{:>5}",
            lambda m, k: (
                "-" if m["engine_utilisation"] is None else f"{m['engine_utilisation']:.2f}"
            ),
        ),
        ("speedup", "{:>7}", lambda m, k: "-" if m["speedup"] is None else f"{m['speedup']:.2f}x"),
        (
            "of oracle",
            "{:>9}",
            lambda m, k: (
                "-" if m["oracle_fraction"] is None else f"{100 * m['oracle_fraction']:.0f}%"
            ),
        ),
        ("same ans", "{:>8}", lambda m, k: f"{100 * m['same_answers_as_baseline']:.0f}%"),
        ("ET", "{:>4}", lambda m, k: str(m.get("early_stopped", 0))),
    ]
    header = " ".join(fmt.format(name) for name, fmt, _ in cols)
    lines = [header, "-" * len(header)]
    for mode, metrics in report["results"].items():
        lines.append(" ".join(fmt.format(get(metrics, mode)) for _, fmt, get in cols))
    spec = report["spec"]
    lines.append(
        f"{spec['backend']} {spec['algorithm']} width {spec['width']}, {spec['queries']} queries, "
        f"concurrency {spec['concurrency']}"
        + (f", profile {spec['profile']}" if spec["backend"] == "sim" else f", {spec['dataset']}")
        + (f", early termination {spec['early_termination']}" if spec["early_termination"] else "")
    )
    return "\n".join(lines)
