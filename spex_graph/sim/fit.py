"""Fit the simulator's step-length model to search trees recorded on a real engine.

The paper workload draws log step lengths as

    log n = log(median) + a(problem, depth) + b(sibling)

and nothing published says how the variance splits between the shared component a
(some steps are long for every branch) and the per-branch one b. `fit_step_split`
estimates it from trees written by `spex record-trees` with a one-way
random-effects ANOVA on log(completion_tokens), groups = (problem, depth):

    within  = pooled variance inside the groups                     (var b)
    between = variance of the group means - within / n0             (var a)
    shared_fraction = between / (between + within)

where n0 is the usual effective group size (n - sum n_g^2 / n) / (G - 1).
Only generated nodes with at least one token count; groups of one node add
nothing to `within`. Run it with

    python -m spex_graph.sim.fit /path/to/recording.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["fit_step_split"]


def fit_step_split(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Step-length statistics and the (problem, depth) share of the log-variance.

    Args:
        rows: recorded trees (one mapping per problem with `id` and `nodes`, each node
            with `depth` and `completion_tokens`), as `read_recorded_trees` returns.

    Returns:
        problems, nodes, groups, mean, median, p90, cv (raw tokens), log_median,
        log_sd, within_var, between_var, shared_fraction, depth_mean (answered leaves).

    Raises:
        ValueError: fewer than two groups with tokens.
    """
    groups: dict[tuple[str, int], list[float]] = {}
    tokens: list[float] = []
    depths: list[float] = []
    problems = 0
    for row in rows:
        problems += 1
        for node in row.get("nodes", []):
            n = int(node.get("completion_tokens") or 0)
            if node.get("parent") is None or n <= 0:
                continue
            tokens.append(float(n))
            groups.setdefault((str(row["id"]), int(node["depth"])), []).append(math.log(n))
            if node.get("answer") is not None:
                depths.append(float(node["depth"]))
    if len(groups) < 2:
        raise ValueError("fit_step_split needs recorded steps in at least two (problem, depth)s")
    logs = [x for g in groups.values() for x in g]
    n_total = len(logs)
    n_groups = len(groups)
    ss_within = sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in groups.values())
    df_within = n_total - n_groups
    within = ss_within / df_within if df_within > 0 else 0.0
    grand = statistics.fmean(logs)
    ss_between = sum(len(g) * (statistics.fmean(g) - grand) ** 2 for g in groups.values())
    ms_between = ss_between / (n_groups - 1)
    n0 = (n_total - sum(len(g) ** 2 for g in groups.values()) / n_total) / (n_groups - 1)
    between = max(0.0, (ms_between - within) / n0) if n0 > 0 else 0.0
    total = between + within
    ordered = sorted(tokens)
    mean = statistics.fmean(tokens)
    return {
        "problems": float(problems),
        "nodes": float(n_total),
        "groups": float(n_groups),
        "mean": mean,
        "median": statistics.median(tokens),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "cv": statistics.pstdev(tokens) / mean if mean > 0 else 0.0,
        "log_median": math.exp(grand),
        "log_sd": math.sqrt(total),
        "within_var": within,
        "between_var": between,
        "shared_fraction": between / total if total > 0 else 0.0,
        "depth_mean": statistics.fmean(depths) if depths else 0.0,
    }


def main(paths: list[str]) -> int:
    """Print the fit of each recording and of all of them together (JSON)."""
    from spex_graph.bench.record_trees import read_recorded_trees

    everything: list[dict[str, Any]] = []
    for path in paths:
        rows = read_recorded_trees(path)
        everything.extend(rows)
        print(json.dumps({"path": path, **fit_step_split(rows)}))
    if len(paths) > 1:
        print(json.dumps({"path": "all", **fit_step_split(everything)}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
