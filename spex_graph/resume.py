"""Resumable dataset runs: finished problems in a JSONL file, unfinished ones in SQLite.

`spex run` appends one row per problem as it finishes. Running the same
command again reads that file, skips problems whose row has no error, and
continues every other problem from its LangGraph checkpoint (an
`AsyncSqliteSaver` next to the results): a search killed mid-way picks up at
the superstep it was in, and since whatever a reward reads (token logprobs)
is stored with the node in the checkpointed tree, it scores exactly as the
uninterrupted search would. A problem's checkpoints are deleted once its row
is written, so the database holds only searches in flight.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spex_graph.progress import SearchProgress, search_with_progress
from spex_graph.result import SearchResult
from spex_graph.runtime.loop import shared_loop
from spex_graph.tasks.base import Problem


def finished_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of problems that finished without error, by problem id (the last row wins).

    A row cut short by a kill (no newline, not JSON) is ignored; its problem runs again.
    """
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "id" in row:
                if "error" in row:
                    rows.pop(str(row["id"]), None)
                else:
                    rows[str(row["id"])] = row
    return rows


def repair_tail(path: Path) -> None:
    """End the file with a newline, so rows appended after a kill start on their own line."""
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb+") as fh:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


def run_key(settings: dict[str, Any]) -> str:
    """A short hash of the options that shape a search (a checkpoint only resumes under them)."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


async def open_checkpointer(path: Path) -> Any:
    """An `AsyncSqliteSaver` on `path`, bound to the shared loop the reasoners run on."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async def connect() -> Any:
        conn = await aiosqlite.connect(str(path))
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return saver

    return await shared_loop().arun(connect())


async def close_checkpointer(saver: Any) -> None:
    """Close the saver's connection (on the shared loop)."""
    await shared_loop().arun(saver.conn.close())


async def search_resumable(
    reasoner: Any,
    problem: Problem,
    thread_id: str,
    on_progress: Callable[[SearchProgress], None] | None = None,
) -> SearchResult:
    """Search `problem`, continuing its checkpointed search under `thread_id` if one exists;
    `on_progress` sees the live progress of the search (layer, nodes, tokens/s, best)."""
    config: Any = {"configurable": {"thread_id": thread_id}}
    loop = shared_loop()
    snapshot = await loop.arun(reasoner.graph.aget_state(config))
    values = snapshot.values or {}
    if values.get("result") and not snapshot.next:
        result = SearchResult.model_validate(values["result"])
    else:
        # a checkpoint with pending nodes continues where it stopped; otherwise start afresh
        question = None if snapshot.next else problem
        if on_progress is None:
            result = await reasoner.ainvoke(question, config)
        else:
            result = await search_with_progress(reasoner, question, on_progress, config)
    saver = reasoner.graph.checkpointer
    if saver is not None:
        await loop.arun(saver.adelete_thread(thread_id))
    return result  # type: ignore[no-any-return]
