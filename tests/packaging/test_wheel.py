"""The built wheel, installed into a fresh venv outside the repository, runs the README's
quick start (fake backend) and a simulated benchmark, with its data sets inside."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (outside the repository) with the wheel installed; its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-q", "-w", work / "dist", ROOT, cwd=work,
    )  # fmt: skip
    [wheel] = (work / "dist").glob("spex_graph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("math500.jsonl.gz", "gsm8k_test.jsonl.gz", "game24.csv.gz", "README.md"):
        assert f"spex_graph/tasks/data/{data}" in names
    assert not any(n.startswith("tests/") for n in names)
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        wheel, cwd=work)  # fmt: skip
    return bin_dir


def test_the_wheel_installs_no_gpu_stack(installed: Path) -> None:
    listed = run(installed / "python", "-m", "pip", "list", "--format=freeze", cwd=installed)
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "spex-graph" in names
    assert not names & {"torch", "sglang", "numpy"}


def test_quick_start_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = re.search(r"## Quick start \(Python\)\n\n```python\n(.*?)^```", readme,
                            flags=re.MULTILINE | re.DOTALL)  # fmt: skip
    assert quick_start is not None
    script = tmp_path / "quick_start.py"
    script.write_text(
        "import spex_graph, sys\n"
        f"assert not spex_graph.__file__.startswith({str(ROOT)!r}), spex_graph.__file__\n"
        + quick_start.group(1)
    )
    env = {**os.environ, "SPEX_BACKEND": "fake", "PYTHONPATH": ""}
    out = run(installed / "python", script, cwd=tmp_path, env=env)
    assert out.split()[0] in ("42", "41")  # the fake backend's toy arithmetic


def test_cli_from_the_wheel_runs_the_data_and_the_simulator(
    installed: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    out = run(
        installed / "spex", "run", "--dataset", "math500", "--limit", "500", "--offset", "0",
        "--backend", "fake", "--width", "2", "--concurrency", "8", "--out", tmp_path / "r.jsonl",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 500
    assert "/500 = " in out
    out = run(
        installed / "spex", "bench", "--backend", "sim", "--queries", "4", "--width", "4",
        "--modes", "baseline,spex", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "baseline" in out and "spex" in out
