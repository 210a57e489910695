"""Measure the engine's aggregate decode throughput for k concurrent branches.

Each measurement sends k requests at once on one shared prompt, each with its
own (non-consecutive) seed, as a search's sibling branches are, and divides
the generated tokens by the wall time. The prompt is evaluated once before
the measurements, so they time decoding, not the first prompt read.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from spex_graph.backends.base import Backend, GenerationRequest
from spex_graph.backends.embedded.models import cache_dir

BENCH_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nExplain step by step, in detail, how to compute the sum of the "
    "first 100 positive integers, then check the result another way.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
"""A chat prompt that makes the model write long answers."""


@dataclass(frozen=True)
class BenchResult:
    """Throughput of one branch count.

    Attributes:
        branches: concurrent requests.
        tokens: generated tokens, all branches together.
        seconds: wall time from the first request sent to the last answer.
    """

    branches: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        """Aggregate generated tokens per second."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_branch_tokens_per_s(self) -> float:
        """Tokens per second each branch saw."""
        return self.tokens_per_s / self.branches if self.branches else 0.0


async def bench_engine(
    backend: Backend, branches: list[int], tokens: int = 64, prompt: str = BENCH_PROMPT
) -> list[BenchResult]:
    """Measure aggregate tokens/s for each k in `branches` (k concurrent seeded requests)."""
    warm = GenerationRequest(prompt=prompt, seeds=(12345,), request_id="bench-warm", max_tokens=4)
    await backend.generate(warm)
    results: list[BenchResult] = []
    for k in branches:
        requests = [
            GenerationRequest(
                prompt=prompt,
                seeds=(1000 * (i + 1) + 7 * k,),
                request_id=f"bench-{k}-{i}",
                max_tokens=tokens,
                temperature=0.8,
            )
            for i in range(k)
        ]
        start = time.perf_counter()
        answers = await asyncio.gather(*(backend.generate(r) for r in requests))
        seconds = time.perf_counter() - start
        generated = sum(c.completion_tokens for answer in answers for c in answer)
        results.append(BenchResult(branches=k, tokens=generated, seconds=seconds))
    return results


def batching_gain(results: list[BenchResult], at: int = 8) -> float | None:
    """Aggregate tokens/s at `at` branches over that at 1 branch, if both were measured."""
    by_k = {r.branches: r.tokens_per_s for r in results}
    if at not in by_k or not by_k.get(1):
        return None
    return by_k[at] / by_k[1]


ASSUMED_BATCH_COST = 0.67
"""The embedded engine's `batch_cost` until `spex bench-engine` has measured this
machine: the better of the two measurements in the README (2 cores; 0.5B: 43.3 -> 60.7
tok/s from 1 to 8 branches, (8 / 1.40 - 1) / 7 = 0.67; 1.5B: 0.81x, 1.27)."""


def batch_cost(results: list[BenchResult]) -> float | None:
    """`BackendCapabilities.batch_cost` from a measurement: with gain g at k branches,
    a k-sequence step takes k / g one-sequence steps, i.e. (k / g - 1) / (k - 1) each."""
    by_k = {r.branches: r.tokens_per_s for r in results}
    single = by_k.get(1)
    multi = [k for k in by_k if k > 1 and by_k[k] > 0]
    if not single or not multi:
        return None
    k = max(multi)
    return max(0.0, (k / (by_k[k] / single) - 1.0) / (k - 1))


def _cost_file(model: str) -> Path:
    return cache_dir() / "batch-cost" / f"{model}-{os.cpu_count() or 1}cpu.json"


def save_batch_cost(model: str, results: list[BenchResult]) -> float | None:
    """Remember this machine's measured batch cost for `model` (read by the backend)."""
    cost = batch_cost(results)
    if cost is not None:
        path = _cost_file(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"model": model, "batch_cost": cost}))
    return cost


def measured_batch_cost(model: str) -> float | None:
    """The batch cost `save_batch_cost` recorded for `model` on this machine, if any."""
    try:
        value = json.loads(_cost_file(model).read_text()).get("batch_cost")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def format_report(results: list[BenchResult], title: str = "") -> str:
    """A table of tokens/s per branch count, ending with ``batching gain at 8: X.XXx``."""
    lines = [title] if title else []
    header = f"{'branches':>8}  {'tokens':>6}  {'seconds':>7}  {'tok/s':>7}  {'tok/s/branch':>12}"
    lines.append(header)
    for r in results:
        lines.append(
            f"{r.branches:>8}  {r.tokens:>6}  {r.seconds:>7.2f}  {r.tokens_per_s:>7.1f}  "
            f"{r.per_branch_tokens_per_s:>12.1f}"
        )
    gain = batching_gain(results)
    if gain is None:
        lines.append("batching gain at 8: n/a (measure with --branches 1,8)")
    else:
        lines.append(f"batching gain at 8: {gain:.2f}x")
    return "\n".join(lines)


async def run_bench(
    model: str = "qwen2.5-coder-1.5b",
    branches: tuple[int, ...] = (1, 8),
    tokens: int = 64,
    parallel: int | None = None,
) -> str:
    """Start an `EmbeddedBackend` for `model`, benchmark it, stop it; return the report."""
    from spex_graph.backends.embedded.backend import EmbeddedBackend

    backend = EmbeddedBackend(model, parallel=parallel or max(8, *branches))
    try:
        results = await bench_engine(backend, list(branches), tokens)
    finally:
        await backend.aclose()
    return format_report(results, title=f"engine: llama-server, model: {backend.model}")
