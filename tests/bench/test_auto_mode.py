"""`spex bench` mode `auto`: the library default (`SpexConfig.auto`) next to the baseline.

On the embedded CPU engine auto resolves to the baseline (extra sequences cost real
time there); on engines that batch for free it is `spex` without early termination.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.backends.embedded.bench import ASSUMED_BATCH_COST, BenchResult, save_batch_cost
from spex_graph.bench import BenchSpec, run_bench
from spex_graph.bench.modes import auto_choice, spex_config
from spex_graph.cli import main
from spex_graph.context import SearchContext
from spex_graph.defaults import make_backend
from spex_graph.errors import ConfigError
from spex_graph.policies.config import SpexConfig


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory: no batch-cost measurement recorded yet."""
    monkeypatch.setenv("SPEX_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_auto_on_the_embedded_engine_resolves_to_the_baseline(fresh_cache: Path) -> None:
    backend = EmbeddedBackend("0.5b")  # nothing starts at construction
    assert backend.capabilities.batch_cost == ASSUMED_BATCH_COST
    ctx = SearchContext.create(backend, task="gsm8k", width=4, spex=spex_config("auto"))
    assert ctx.spex == SpexConfig.baseline()
    line = auto_choice(backend)
    assert line.startswith("speculation off") and f"{ASSUMED_BATCH_COST:.2f}" in line


def test_auto_follows_this_machines_measured_batch_cost(fresh_cache: Path) -> None:
    # `spex bench-engine` records the measurement; the backend reads it at construction
    costly = [BenchResult(1, 433, 10.0), BenchResult(8, 520, 10.0)]  # 1.20x at 8 branches
    cost = save_batch_cost("qwen2.5-coder-0.5b", costly)
    assert cost == pytest.approx((8 / 1.2 - 1) / 7, rel=1e-3)
    backend = EmbeddedBackend("0.5b")
    assert backend.capabilities.batch_cost == pytest.approx(cost)
    assert SearchContext.create(backend, task="gsm8k").spex == SpexConfig.baseline()
    assert f"{cost:.2f}" in auto_choice(backend)
    # an engine whose 8 branches run as fast as one each would batch for free
    save_batch_cost("qwen2.5-coder-0.5b", [BenchResult(1, 100, 10.0), BenchResult(8, 800, 10.0)])
    free = EmbeddedBackend("0.5b")
    assert free.capabilities.batch_cost == 0.0
    assert SearchContext.create(free, task="gsm8k").spex.speculation
    assert auto_choice(free).startswith("speculation and budget on")


def test_bench_auto_mode_on_a_free_batching_backend_speculates_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI as a user runs it: `auto` next to `baseline`, the ratio in the table."""
    # 0.1 s per request: the budget holds speculation back until primary scoring has
    # been seen to leave the reward engine idle (a ~2 s meter), so a run of a few
    # 0.01 s requests would end before speculation could start
    monkeypatch.setenv("SPEX_FAKE_LATENCY_S", "0.1")
    out = tmp_path / "auto.json"
    args = ["bench", "--backend", "fake", "--width", "4", "--queries", "3"]
    assert main([*args, "--modes", "baseline,auto", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "auto: " in printed and "SpexConfig.auto: speculation and budget on" in printed
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["baseline", "auto"]
    assert results["auto"]["answers"] == results["baseline"]["answers"]
    assert results["auto"]["tokens_speculative_used"] > 0
    assert results["baseline"]["tokens_speculative_used"] == 0
    assert results["auto"]["speedup"] is not None
    row = next(line for line in printed.splitlines() if line.startswith("auto "))
    assert row.rstrip().split()[-4].endswith("x")  # the speedup column, side by side


def test_bench_auto_mode_on_the_sim_is_spex_without_early_termination() -> None:
    spec = BenchSpec(width=4, queries=4, concurrency=2, modes="baseline,spex,auto")
    runs = {run.mode: run for run in run_bench(spec, progress=lambda _line: None)}
    latencies = {
        mode: [r["latency_s"] for r in run.results] for mode, run in runs.items()
    }  # virtual clock: exact
    assert latencies["auto"] == latencies["spex"]
    assert latencies["auto"] != latencies["baseline"]
    assert [r["answer"] for r in runs["auto"].results] == [
        r["answer"] for r in runs["baseline"].results
    ]


def test_spex_threads_sets_the_embedded_engine_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEX_THREADS", "1")
    backend = make_backend("embedded", model="0.5b")
    assert isinstance(backend, EmbeddedBackend) and backend.threads == 1
    monkeypatch.setenv("SPEX_THREADS", "all")
    with pytest.raises(ConfigError, match="SPEX_THREADS must be a positive whole number"):
        make_backend("embedded")
