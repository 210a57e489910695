"""`spex bench` on a real backend counts the tokens of aborted requests as waste.

The CLI runs as a subprocess against a fake SGLang server that speaks the native
protocol (an abort answers 200 with `finish_reason.type == "abort"` and the tokens
generated so far): every token the server generated must show up in the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer

from spex_graph.bench.report import build_report, format_table
from spex_graph.bench.runner import BenchSpec, ModeRun

SPEX = Path(sys.executable).with_name("spex")


def _bench(tmp_path: Path, *backend: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`spex bench` (baseline and spec-only, 2 queries) as a subprocess; its results."""
    out = tmp_path / "out.json"
    # fmt: off
    done = subprocess.run(
        [
            str(SPEX), "bench", *backend, "--queries", "2", "--width", "4",
            "--modes", "baseline,spec-only", "--step-max-tokens", "24", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )
    # fmt: on
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())["results"]


def test_sglang_bench_reports_aborted_tokens_and_accounts_for_every_token(
    tmp_path: Path,
) -> None:
    server = FakeSGLangServer(token_delay=0.0005).start()
    try:
        done, results = _bench(tmp_path, "--backend", "sglang", "--backend-url", server.url)
    finally:
        server.stop()
    # spec-only: speculation without a budget, so that some of it is always dropped
    # midway (the budget may find no room on the fake engine)
    base, spex = results["baseline"], results["spec-only"]
    assert base["tokens_aborted"] == 0 and base["engine_tokens"] == base["tokens_primary"]
    assert spex["tokens_aborted"] > 0  # speculation the search dropped midway
    assert server.aborted, "the fake engine aborted nothing"
    # every token the engine generated is in some mode's count, aborted ones included
    assert base["engine_tokens"] + spex["engine_tokens"] == sum(server.completion_tokens.values())
    # exact mode, no early termination: the used work is the baseline's, the rest is waste
    assert spex["same_answers_as_baseline"] == 1.0
    assert spex["tokens_speculative_wasted"] == spex["engine_tokens"] - base["engine_tokens"]
    assert "does not report the tokens of requests aborted" not in done.stdout


def test_openai_bench_counts_the_streamed_tokens_of_aborted_requests(tmp_path: Path) -> None:
    """The OpenAI-compatible backend streams: a dropped request's tokens count as waste
    (a lower bound: chunks still in flight when the connection dropped are not seen)."""
    server = FakeOpenAIServer(token_delay=0.002).start()
    try:
        backend = ("--backend", "openai", "--backend-url", server.url, "--model", "fake-model")
        done, results = _bench(tmp_path, *backend)
    finally:
        server.stop()
    base, spex = results["baseline"], results["spec-only"]
    assert base["tokens_aborted"] == 0 and base["engine_tokens"] == base["tokens_primary"]
    assert server.aborted, "the fake server aborted nothing"
    assert spex["tokens_aborted"] > 0
    counted = base["engine_tokens"] + spex["engine_tokens"]
    assert 0.8 * sum(server.generated.values()) <= counted <= sum(server.generated.values())
    assert spex["same_answers_as_baseline"] == 1.0
    assert spex["tokens_speculative_wasted"] == spex["engine_tokens"] - base["engine_tokens"]
    assert "does not report the tokens of requests aborted" not in done.stdout


def _run(mode: str, aborted: int | None) -> ModeRun:
    result = {
        "query_id": "q0",
        "answer": "5",
        "latency_s": 1.0,
        "tokens_primary": 100,
        "tokens_speculative_used": 20,
        "tokens_speculative_wasted": 30,
    }
    return ModeRun(mode, [result], {}, {}, 0.0, 1.0, aborted_tokens=aborted)


def test_aborted_tokens_are_waste_and_an_uncounting_backend_says_so() -> None:
    spec = BenchSpec(backend="openai", queries=1, modes="baseline,spex")
    counted = build_report(spec, [_run("baseline", 0), _run("spex", 50)])["results"]["spex"]
    assert counted["tokens_aborted"] == 50 and counted["tokens_speculative_wasted"] == 80
    report = build_report(spec, [_run("baseline", None), _run("spex", None)])
    assert report["results"]["spex"]["tokens_aborted"] is None
    assert report["results"]["spex"]["tokens_speculative_wasted"] == 30
    assert "waste is a lower bound: backend openai does not report" in format_table(report)
