"""`spex trace` writes a self-contained HTML report; headless Chromium renders it and the
screenshot shows the timeline's and the tree's colours.

Needs Debian's chromium (`make test` installs it when missing: apt-get install -y chromium).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from spex_graph.bench.plot import COLOURS
from spex_graph.bench.trace_html import reward_colour
from spex_graph.cli import main

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trace")
    trace = folder / "trace.json"
    args = ["bench", "--backend", "sim", "--queries", "1", "--width", "8"]
    assert main([*args, "--modes", "baseline,spex", "--trace", str(trace)]) == 0
    assert main(["trace", str(trace), "--query", "sim-0", "--out", str(folder / "t.html")]) == 0
    return folder / "t.html"


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    for outside in ("<script", "http://", "https://", "src=", "<link"):
        assert outside not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "query sim-0" in page and "<circle" in page and "<rect" in page


def test_chromium_renders_the_timeline_and_the_tree(report: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed: apt-get install -y chromium"
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, "--window-size=1200,1400", f"--screenshot={shot}",
         report.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]

    import matplotlib.image

    pixels = (matplotlib.image.imread(str(shot))[:, :, :3] * 255).round().astype(int)
    assert pixels.shape == (1400, 1200, 3)
    counts = Counter(map(tuple, pixels.reshape(-1, 3).tolist()))
    # every request kind of this SPEX run is drawn (bars are at least a few pixels each)
    for kind in ("primary", "spec-used", "spec-wasted", "cancelled", "reward"):
        assert counts[rgb(COLOURS[kind])] > 150, kind
    # the tree: nodes in the top reward colour, and the white page is not all there is
    assert counts[rgb(reward_colour(1.0))] > 30
    assert counts[(255, 255, 255)] < 0.8 * 1200 * 1400
