"""LangGraph Studio through the real server: `langgraph dev` serves integrations/studio and a
`langgraph-sdk` client lists the assistant, streams a run and gets the answer."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spex_graph.backends.embedded.server import pick_free_port

ROOT = Path(__file__).resolve().parents[2]
STUDIO = ROOT / "integrations" / "studio"
LANGGRAPH = Path(sys.executable).with_name("langgraph")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `langgraph dev` server on a free port, as a user starts it."""
    port = pick_free_port()
    workdir = tmp_path_factory.mktemp("studio")
    log = workdir / "langgraph-dev.log"
    # The server keeps threads and assistants in ./.langgraph_api: start from none, and put
    # back whatever a user had there.
    state, saved = STUDIO / ".langgraph_api", workdir / "saved-langgraph-api"
    if state.exists():
        shutil.move(state, saved)
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--port", str(port)],
            cwd=STUDIO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)
        if saved.exists():
            shutil.move(saved, state)


async def test_studio_lists_the_assistant_and_its_context_settings(studio_url: str) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=studio_url)
    assistants = await client.assistants.search(graph_id="spex_search")
    assert [a["graph_id"] for a in assistants] == ["spex_search"]
    schemas = await client.assistants.get_schemas(assistants[0]["assistant_id"])
    context = schemas["context_schema"]
    assert context is not None
    assert {"backend", "backend_url", "model", "task", "algorithm", "width"} <= set(
        context["properties"]
    )
    assert "question" in schemas["input_schema"]["properties"]


async def test_studio_run_streams_the_search_and_answers(studio_url: str) -> None:
    """An assistant configured by name (no live objects) streams select/expand/evaluate
    updates while the run goes on, and the final state holds the answer."""
    from langgraph_sdk import get_client

    client = get_client(url=studio_url)
    assistant = await client.assistants.create(
        graph_id="spex_search", context={"backend": "fake", "width": 2}, name="fake"
    )
    events: list[tuple[str, object]] = []
    async for chunk in client.runs.stream(
        None,
        assistant["assistant_id"],
        input={"question": "What is 6 x 7?"},
        stream_mode=["updates", "values"],
    ):
        assert chunk.event != "error", chunk.data
        events.append((chunk.event, chunk.data))

    updates = [next(iter(data)) for event, data in events if event == "updates"]  # type: ignore[call-overload]
    assert updates[0] == "start" and updates[-1] == "aggregate"
    assert {"select", "expand", "evaluate"} <= set(updates[:-1])
    assert updates.count("expand") >= 2  # several rounds, each its own streamed update
    values = [data for event, data in events if event == "values"]
    assert all("result" not in v for v in values[:-1])  # type: ignore[operator]
    result = values[-1]["result"]  # type: ignore[index]
    assert result["answer"] in ("42", "41")
    assert result["nodes"] > 4 and result["chosen_path"]
    # the graph state the Studio panel shows: a tree with the generated nodes
    assert len(values[-1]["tree"]["nodes"]) > 4  # type: ignore[index]
