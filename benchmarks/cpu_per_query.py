"""CPU seconds per query as a benchmark grows (issue 11: flat from 100 to 1,000 queries).

Runs `run_bench` on the simulator (REBASE width 16, preset artifact on H100: the
`spex bench` defaults) in this process, once per size (baseline first, then the
other modes, as `spex bench` does), and prints per query of the whole run: CPU
seconds (`time.process_time`, engine setup included, the probe's own work
excluded), full garbage collections, the objects those collections walked
(every object alive at each, which does not depend on the machine's load), and
CPU seconds spent in the collector; per mode, CPU seconds per query; and CPU
seconds per query over each `--window` queries finished, mode after mode (a
mode's first and last windows hold its ramp-up and drain; if anything
accumulated per finished query, the middle windows would climb):

    python benchmarks/cpu_per_query.py --sizes 100,300,1000 --modes baseline,spex
    python benchmarks/cpu_per_query.py --gc default   # CPython's default thresholds

`--gc bench` (default) is what `spex bench` does (spex_graph.bench.collector).
CPU time depends on what else the machine runs; compare sizes from one run.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import time
from typing import Any

from spex_graph.bench import runner
from spex_graph.bench.collector import YOUNG_GENERATION
from spex_graph.bench.runner import BenchSpec, run_bench


class CollectorProbe:
    """Counts full collections, the objects they walk, and the collector's CPU time."""

    def __init__(self) -> None:
        self.full = 0
        self.walked = 0
        self.gc_cpu = 0.0
        self.own_cpu = 0.0  # time spent counting objects, excluded from the figures
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.process_time()
        if phase == "start":
            if info["generation"] == 2:
                self.full += 1
                self.walked += sum(len(gc.get_objects(g)) for g in range(3))
                self.own_cpu += time.process_time() - now
            self._started = time.process_time()
        else:
            self.gc_cpu += now - self._started


class TimedGraph:
    """The runner's search graph, noting the CPU clock as each query finishes."""

    def __init__(self, graph: Any, probe: CollectorProbe, stamps: list[float]) -> None:
        self._graph, self._probe, self._stamps = graph, probe, stamps

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """The graph's `ainvoke`, then a CPU-clock stamp (the probe's own time excluded)."""
        try:
            return await self._graph.ainvoke(*args, **kwargs)
        finally:
            self._stamps.append(time.process_time() - self._probe.own_cpu)


def measure(
    modes: str, queries: int, concurrency: int, gc_young: int | None, window: int
) -> dict[str, Any]:
    """One `run_bench` of `queries` in `modes`, with its per-query figures."""
    spec = BenchSpec(backend="sim", queries=queries, concurrency=concurrency, modes=modes)
    gc.collect()
    probe = CollectorProbe()
    stamps: list[float] = []
    build = runner.build_search_graph

    def timed_graph(**_options: Any) -> Any:
        return TimedGraph(build(), probe, stamps)

    runner.build_search_graph = timed_graph  # type: ignore[assignment]
    gc.callbacks.append(probe)
    started = time.process_time()
    try:
        runs = run_bench(spec, progress=lambda _line: None, gc_young=gc_young)
    finally:
        cpu = time.process_time() - started
        gc.callbacks.remove(probe)
        runner.build_search_graph = build
    marks = [started, *stamps[window - 1 :: window]]
    ends = [started, *stamps[queries - 1 :: queries]]
    return {
        "modes": [run.mode for run in runs],
        "queries": queries,
        "failed": [sum(1 for r in run.results if "error" in r) for run in runs],
        "cpu_s_per_query_by_mode": [
            round((b - a) / queries, 4) for a, b in itertools.pairwise(ends)
        ],
        "cpu_s_per_query": round((cpu - probe.own_cpu) / queries, 4),
        "gc_cpu_s_per_query": round(probe.gc_cpu / queries, 4),
        "full_collections_per_query": round(probe.full / queries, 4),
        "objects_walked_per_query": round(probe.walked / queries),
        f"cpu_s_per_query_by_{window}_finished": [
            round((b - a) / window, 4) for a, b in itertools.pairwise(marks)
        ],
    }


def main() -> None:
    """Parse the options, warm up, and print one JSON line per mode and size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--modes", default="baseline,spex")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--gc", choices=("bench", "default"), default="bench")
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    gc_young = YOUNG_GENERATION if args.gc == "bench" else None
    print(json.dumps({"gc": args.gc, "load_average": os.getloadavg()}), flush=True)
    measure(args.modes, 4, 4, gc_young, 4)  # imports and caches, outside the figures
    for size in (int(s) for s in args.sizes.split(",")):
        row = measure(args.modes, size, args.concurrency, gc_young, args.window)
        print(json.dumps(row), flush=True)
    print(json.dumps({"load_average": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
