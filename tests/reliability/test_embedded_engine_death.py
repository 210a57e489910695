"""The embedded engine dies and comes back; it never outlives Python (issue #11, item 4).

On the real 0.5B model (marked `embedded`): `llama-server` is killed in the
middle of a search, the backend restarts it, the requests it was serving are
retried, and every query finishes. A Python process that started the server
from the reasoner's loop thread leaves no server behind however it ends:
normal exit, an uncaught exception, SIGINT, SIGTERM or SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import AnswerReward

from spex_graph import SpexReasoner
from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.backends.embedded.models import find_parts, get_spec
from spex_graph.errors import ModelFileError
from spex_graph.runtime.loop import shared_loop

SMALL = "qwen2.5-coder-0.5b"
CHILD = Path(__file__).with_name("embedded_child.py")


def _installed() -> bool:
    try:
        find_parts(get_spec(SMALL))
    except ModelFileError:
        return False
    return True


pytestmark = [
    pytest.mark.embedded,
    pytest.mark.skipif(not _installed(), reason="make setup-model MODEL=0.5b"),
]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def test_engine_death_mid_search_restarts_and_every_query_finishes() -> None:
    backend = EmbeddedBackend(SMALL, parallel=4, ctx_per_slot=1024)
    reasoner = SpexReasoner(
        backend,
        AnswerReward(),
        task="gsm8k",
        width=2,
        max_depth=2,
        step_max_tokens=12,
        request_timeout_s=300,
    )

    async def main() -> list[object]:
        await shared_loop().arun(backend.health())  # loaded and serving
        queries = [asyncio.ensure_future(reasoner.ainvoke(f"What is {i} + {i}?")) for i in range(2)]
        await asyncio.sleep(0.5)  # requests are running on the engine
        assert backend.server is not None
        assert not all(q.done() for q in queries)
        backend.server.kill()
        return await asyncio.gather(*queries, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert backend.server is not None and backend.server.restarts >= 1, results
    finally:
        reasoner.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert all(r.nodes > 1 for r in results)  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["exit", "raise", "SIGINT", "SIGTERM", "SIGKILL"])
def test_no_orphaned_server_however_python_ends(how: str) -> None:
    mode = how if how in ("exit", "raise") else "wait"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal, even when the tests run as a background job (SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), proc.stderr.read() if proc.stderr else line
    server_pid = int(line)
    assert alive(server_pid)
    if mode == "wait":
        os.kill(proc.pid, getattr(signal, how))
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(server_pid):
        os.kill(server_pid, signal.SIGKILL)
        pytest.fail(f"llama-server {server_pid} outlived Python ended by {how}")
