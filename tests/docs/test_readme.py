"""Every Python snippet in the README runs as written (on the fake backend: the snippets
take their backend from $SPEX_BACKEND when they pass none)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"snippet_{index}.py"
    script.write_text(SNIPPETS[index], encoding="utf-8")
    env = {**os.environ, "SPEX_BACKEND": "fake"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"snippet {index}:\n{SNIPPETS[index]}\n{proc.stderr}"
    assert proc.stdout.strip(), "a README snippet should show something"


def test_first_screen_says_what_it_is_and_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:30])
    assert "Tree-of-Thought" in first_screen and "LangGraph" in first_screen
    assert "make demo" in first_screen and "make test" in first_screen
    assert "solved N/4" in first_screen  # what the demo prints
    assert re.search(r"\d+ s|\dm\d\ds|\d+ min", first_screen)  # and how long it takes
