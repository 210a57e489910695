"""`spex record-trees` as a user runs it: a subprocess writing whole trees, resumable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spex_graph.bench.record_trees import read_recorded_trees


def _record(out: Path, limit: int) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "spex_graph.cli", "record-trees", "--backend", "fake",
        "--dataset", "gsm8k", "--limit", str(limit), "--width", "3", "--out", str(out),
    ]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def test_record_trees_writes_every_node_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "trees.jsonl.gz"
    first = _record(out, 2)
    assert first.returncode == 0, first.stderr
    rows = read_recorded_trees(out)
    assert [r["id"] for r in rows] == ["gsm8k-0", "gsm8k-1"]
    for row in rows:
        nodes = row["nodes"]
        assert nodes[0]["parent"] is None and len(nodes) > 1
        ids = {n["id"] for n in nodes}
        assert all(n["parent"] in ids for n in nodes[1:])  # a real tree, no dangling parents
        assert all(n["depth"] >= 1 and n["reward"] is not None for n in nodes[1:])
        assert sum(n["completion_tokens"] for n in nodes) > 0
        assert row["algorithm"] == "rebase" and row["width"] == 3
    again = _record(out, 3)  # finished problems are skipped, the third is added
    assert again.returncode == 0, again.stderr
    assert "recorded 1 problems" in again.stdout
    assert [r["id"] for r in read_recorded_trees(out)] == ["gsm8k-0", "gsm8k-1", "gsm8k-2"]
