"""`examples/demo.py` (what `make demo` runs): the library default, what it chose and
why, and the baseline on the same problem side by side."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.backends.embedded.bench import ASSUMED_BATCH_COST
from spex_graph.result import SearchResult
from spex_graph.tasks.base import Problem

ROOT = Path(__file__).resolve().parents[2]


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("spex_demo", ROOT / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_demo_prints_auto_and_the_baseline_side_by_side() -> None:
    env = {**os.environ, "SPEX_FAKE_LATENCY_S": "0.01"}
    proc = subprocess.run(
        [sys.executable, "examples/demo.py", "--backend", "fake", "--gsm8k", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "SPEX auto: speculation and budget on: an extra concurrent sequence costs 0.00" in out
    assert re.search(r"solved \d/2 in [\d.]+s \(REBASE width 4, --spex auto\)", out)
    assert "the same problem with SpexConfig.baseline():" in out
    assert "run-to-run noise" not in out  # auto speculates on the fake engine
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("problem "))
    assert "--spex auto" in lines[head] and "baseline" in lines[head] and "speedup" in lines[head]
    row = lines[head + 2]
    # the fake backend is exact: both runs give the same answer; each cell has a time
    cells = re.fullmatch(
        r"gsm8k-0\s+([\d.]+)s\s+(\S+) \((?:correct|wrong)\)\s+([\d.]+)s\s+(\S+) "
        r"\((?:correct|wrong)\)\s+([\d.]+)x",
        row,
    )
    assert cells is not None, row
    assert cells.group(2) == cells.group(4)


def test_the_side_by_side_speedup_is_baseline_time_over_auto_time() -> None:
    demo = load_demo()
    problem = Problem(id="gsm8k-0", task="gsm8k", question="q", gold="18")

    def run(seconds: float, answer: str) -> object:
        result = SearchResult(query_id="x", question="q", answer=answer, correct=answer == "18")
        return demo.Solved("gsm8k", problem, result, seconds)

    table = demo.side_by_side([run(40.0, "18")], [run(50.0, "14")], "auto")
    row = table.splitlines()[2].split()
    assert row == ["gsm8k-0", "40.0s", "18", "(correct)", "50.0s", "14", "(wrong)", "1.25x"]


def test_the_demo_says_why_auto_leaves_speculation_off_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEX_CACHE_DIR", str(tmp_path))  # no measurement recorded
    line = load_demo().spex_choice(EmbeddedBackend("0.5b"), "auto")
    assert line.startswith("speculation off (the baseline)")
    assert f"costs {ASSUMED_BATCH_COST:.2f}" in line and "assumed" in line
    assert "spex bench-engine" in line
