"""Record whole search trees on a real engine, for offline analysis.

`spex record-trees` runs full searches (no speculation, no early stop) and
writes one JSON line per problem: the problem, the search's answer and
correctness, and every node of the tree with its parent, depth, token counts,
reward, answer and correctness against the gold answer. The recordings feed
the simulator's workload fit (step-length variance split) and the
early-termination replay: real trees, no weights.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spex_graph.tasks.base import Problem, Task

__all__ = ["read_recorded_trees", "record_problem", "record_trees"]

SCHEMA = 1
"""Version of the line format below; bump on incompatible changes."""


def _node_row(node: dict[str, Any], task: Task, problem: Problem) -> dict[str, Any]:
    answer = node.get("answer")
    return {
        "id": node["id"],
        "parent": node["parent"],
        "child_index": node.get("child_index", 0),
        "depth": node.get("depth", 0),
        "text": node.get("text", ""),
        "prompt_tokens": node.get("prompt_tokens", 0),
        "completion_tokens": node.get("completion_tokens", 0),
        "reward": node.get("reward"),
        "status": node.get("status"),
        "finish_reason": node.get("finish_reason"),
        "answer": answer,
        "correct": task.is_correct(problem, answer) if answer is not None else None,
        "created_at": node.get("created_at"),
        "scored_at": node.get("scored_at"),
    }


async def record_problem(graph: Any, ctx: Any, problem: Problem) -> dict[str, Any]:
    """Search one problem to completion and return its recording line."""
    import dataclasses

    started = time.perf_counter()
    out = await graph.ainvoke({"problem": dataclasses.asdict(problem)}, context=ctx)
    result, tree = out["result"], out["tree"]
    return {
        "schema": SCHEMA,
        "id": problem.id,
        "task": problem.task,
        "question": problem.question,
        "gold": problem.gold,
        "algorithm": result.get("algorithm"),
        "width": result.get("width"),
        "answer": result.get("answer"),
        "correct": result.get("correct"),
        "stop_reason": result.get("stop_reason"),
        "wall_s": round(time.perf_counter() - started, 3),
        "nodes": [_node_row(n, ctx.task, problem) for n in tree["nodes"]],
    }


def record_trees(
    ctx: Any,
    problems: list[Problem],
    out: Path,
    *,
    concurrency: int = 1,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Record `problems` into `out` (JSONL, gzip when it ends in .gz), appending.

    Problems already in `out` are skipped, so an interrupted recording resumes.
    Returns how many problems were recorded by this call.
    """
    from spex_graph.graph import build_search_graph
    from spex_graph.runtime.loop import run_on_shared_loop

    done = {row["id"] for row in read_recorded_trees(out)} if out.exists() else set()
    todo = [p for p in problems if p.id not in done]
    graph = build_search_graph()
    opener = gzip.open if out.suffix == ".gz" else open
    out.parent.mkdir(parents=True, exist_ok=True)
    recorded = 0

    async def run_all() -> None:
        nonlocal recorded
        gate = asyncio.Semaphore(max(1, concurrency))
        lock = asyncio.Lock()

        async def one(problem: Problem) -> None:
            nonlocal recorded
            async with gate:
                row = await record_problem(graph, ctx, problem)
            async with lock:
                with opener(out, "at", encoding="utf-8") as fh:  # type: ignore[operator]
                    fh.write(json.dumps(row) + "\n")
                recorded += 1
                if progress:
                    progress(
                        f"[{len(done) + recorded}/{len(problems)}] {problem.id}: "
                        f"answer {row['answer']!r} correct={row['correct']} "
                        f"nodes={len(row['nodes'])} {row['wall_s']:.0f}s"
                    )

        await asyncio.gather(*(one(p) for p in todo))

    run_on_shared_loop(run_all())
    return recorded


def read_recorded_trees(path: str | Path) -> list[dict[str, Any]]:
    """Read a recording written by `record_trees` (plain or gzip JSONL)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows
