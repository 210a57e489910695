"""`spex run` resumes after SIGKILL and scores exactly (issue #11, item 5).

A real `spex run` process (a slow scripted engine whose token logprobs feed
the default GSM8K reward) is killed with SIGKILL mid-run. Running the same
command again skips the problems already written, continues the interrupted
searches from their SQLite checkpoints, and ends with exactly the rows an
uninterrupted run writes: same answers, votes (reward-weighted), paths and
tree sizes. A run with failed queries exits 1 and says how many.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spex_graph.tasks import get_task

SLOW_CLI = Path(__file__).with_name("slow_cli.py")
COMPARED = ("answer", "votes", "chosen_path", "chosen_node", "nodes", "stop_reason")
LIMIT = 6


def run_args(out: Path) -> list[str]:
    return [
        sys.executable,
        str(SLOW_CLI),
        "run",
        "--backend",
        "fake",
        "--dataset",
        "gsm8k",
        "--limit",
        str(LIMIT),
        "--width",
        "4",
        "--concurrency",
        "2",
        "--out",
        str(out),
    ]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SLOW_S": "0.08", "PYTHONIOENCODING": "utf-8", **extra}


def rows(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        out[row["id"]] = row
    return out


def threads(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("select distinct thread_id from checkpoints")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: Any) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("a") / "rows.jsonl"
    proc = subprocess.run(run_args(out), env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return rows(out)


def test_sigkill_then_rerun_resumes_exactly(
    tmp_path: Path, uninterrupted: dict[str, dict[str, Any]]
) -> None:
    out = tmp_path / "rows.jsonl"
    db = out.with_name(out.name + ".checkpoints.sqlite")
    proc = subprocess.Popen(
        run_args(out), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # kill while at least one row is written and some search is mid-way (checkpointed)
        if out.exists() and out.read_text().count("\n") >= 1 and db.exists() and threads(db):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = rows(out)
    in_flight = threads(db)
    assert 1 <= len(before) < LIMIT, "killed mid-run"
    assert in_flight, "some searches were interrupted with a checkpoint"

    again = subprocess.run(run_args(out), env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(before)} of {LIMIT} already in" in again.stdout
    after = rows(out)
    assert set(after) == set(uninterrupted)
    lines = [json.loads(x)["id"] for x in out.read_text().splitlines() if x.strip()]
    assert len(lines) == LIMIT, "finished problems were not run again"
    for pid, row in uninterrupted.items():
        for field in COMPARED:
            assert after[pid][field] == row[field], (pid, field)
    assert threads(db) == set(), "checkpoints of finished searches are deleted"


def test_failed_queries_exit_1_and_are_retried_on_rerun(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    ids = [p.id for p in get_task("gsm8k").load(limit=LIMIT)]
    failing = env(FAIL_IDS=",".join(ids[:2]), SLOW_S="0.0")
    proc = subprocess.run(run_args(out), env=failing, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"2 of {LIMIT} queries failed" in proc.stderr
    assert sum("error" in r for r in rows(out).values()) == 2

    proc = subprocess.run(run_args(out), env=env(SLOW_S="0.0"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {LIMIT - 2} of {LIMIT} already in" in proc.stdout
    assert all("error" not in r for r in rows(out).values())


def test_fresh_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    out.write_text('{"id": "gsm8k-1", "answer": "x"}\n{"id": "gsm8k-2", "ans')
    args = [*run_args(out), "--fresh"]
    proc = subprocess.run(args, env=env(SLOW_S="0.0"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout
    assert len(rows(out)) == LIMIT


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_stops_like_ctrl_c_and_the_rerun_resumes(
    tmp_path: Path, uninterrupted: dict[str, dict[str, Any]], sigint: str
) -> None:
    """SIGTERM mid-run: one line on stderr, exit 143, whole rows only, and the same
    command again finishes with the uninterrupted run's rows. With SIGINT ignored
    (a background job) SIGTERM must still stop the run the same way."""
    out = tmp_path / "rows.jsonl"
    handler = signal.SIG_DFL if sigint == "default" else signal.SIG_IGN
    proc = subprocess.Popen(
        run_args(out),
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, handler),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    messages = [line for line in stderr.splitlines() if "spex:" in line]
    assert messages == [
        f"spex: terminated (SIGTERM); finished rows are in {out}; "
        "run the same command again to resume"
    ], stderr
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    lines = out.read_text().splitlines()
    assert all(json.loads(line)["id"] for line in lines), "every written row is whole"
    assert 1 <= len(lines) < LIMIT, "stopped mid-run"

    again = subprocess.run(run_args(out), env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(lines)} of {LIMIT} already in" in again.stdout
    after = rows(out)
    for pid, row in uninterrupted.items():
        for field in COMPARED:
            assert after[pid][field] == row[field], (pid, field)
