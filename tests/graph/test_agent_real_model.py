"""examples/agent_tool.py as a user runs it: the embedded 0.5B is the agent's chat model
(llama-server's OpenAI API) and the reasoner's policy. Minutes on a busy 2-core machine, so
it runs when asked: ``SPEX_REAL_AGENT=1 pytest tests/graph/test_agent_real_model.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spex_graph.backends.embedded.models import find_parts, get_spec
from spex_graph.errors import ModelFileError

ROOT = Path(__file__).resolve().parents[2]


def _installed() -> bool:
    try:
        find_parts(get_spec("qwen2.5-coder-0.5b"))
    except ModelFileError:
        return False
    return True


pytestmark = [
    pytest.mark.embedded,
    pytest.mark.slow,
    pytest.mark.skipif(not _installed(), reason="make setup-model MODEL=0.5b"),
    pytest.mark.skipif(
        os.environ.get("SPEX_REAL_AGENT") != "1", reason="minutes of CPU: SPEX_REAL_AGENT=1"
    ),
]


def test_the_agent_example_calls_the_reasoner_on_the_real_model() -> None:
    pytest.importorskip("langchain_openai")
    proc = subprocess.run(
        [sys.executable, "examples/agent_tool.py", "--model", "0.5b", "--width", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # the model chose the tool, the search ran and its answer went back to the model
    assert "Tool Calls:" in out and "spex_reasoner" in out, out
    tool_part = out.split("Tool Message", 1)[1]
    answer = tool_part.split("Ai Message", 1)[0].strip().splitlines()[-1].strip()
    assert answer and answer != "None", out
    assert "Ai Message" in tool_part, out
