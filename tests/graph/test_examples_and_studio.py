"""Examples run (on the fake backend) and the Studio graph loads and runs from langgraph.json."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_langchain_chain_example() -> None:
    out = run_example("examples/langchain_chain.py", "--backend", "fake")
    assert out.count("Final answer: ") == 2


def test_stream_example() -> None:
    out = run_example("examples/stream_tree.py", "--backend", "fake")
    assert "+ node 1" in out and "answer: " in out


def _studio_graph():  # type: ignore[no-untyped-def]
    config = json.loads((ROOT / "integrations/studio/langgraph.json").read_text())
    module_path, attr = config["graphs"]["spex_search"].split(":")
    spec = importlib.util.spec_from_file_location(
        "studio_graph", ROOT / "integrations/studio" / module_path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


async def test_studio_graph_runs_without_a_context(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    graph = _studio_graph()
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    monkeypatch.setenv("SPEX_WIDTH", "2")
    out = await graph.ainvoke({"question": "What is 6 x 7?"})
    assert out["result"]["answer"] in ("42", "41")
    assert out["result"]["width"] == 2
    assert "expand" in graph.get_graph().draw_mermaid()


async def test_studio_graph_builds_its_context_from_a_dict_like_a_server(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`langgraph dev` passes the assistant's context as a dict, often empty."""
    graph = _studio_graph()
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    out = await graph.ainvoke({"question": "What is 6 x 7?"}, context={})
    assert out["result"]["answer"] in ("42", "41")
    out = await graph.ainvoke(
        {"question": "What is 6 x 7?"}, context={"width": 3, "algorithm": "beam"}
    )
    assert (out["result"]["algorithm"], out["result"]["width"]) == ("beam", 3)
