"""`spex bench --plot`: integer slot ticks, no overlapping labels, a reward colour bar."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from spex_graph.bench.plot import DROPPED, REWARD_CMAP, node_rewards, timeline_figure
from spex_graph.bench.trace_view import load_trace
from spex_graph.cli import main
from spex_graph.runtime.trace import RequestRecord

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib import colormaps  # noqa: E402
from matplotlib.image import imread  # noqa: E402


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("plot")
    args = ["bench", "--backend", "sim", "--algorithm", "rebase", "--width", "16"]
    args += ["--queries", "4", "--concurrency", "4", "--modes", "baseline,spex"]
    png, trace = out / "timeline.png", out / "trace.json"
    assert main([*args, "--plot", str(png), "--trace", str(trace)]) == 0
    return png, load_trace(trace)


def _figure(trace: dict[str, Any]) -> Any:
    query = next(iter(trace.values()))
    records = [RequestRecord(**r) for r in query["records"]]
    return timeline_figure([("spex", records)], [node_rewards(query["tree"])])


def test_slot_ticks_are_whole_numbers(bench: tuple[Path, dict[str, Any]]) -> None:
    fig = _figure(bench[1])
    ticks = list(fig.axes[0].get_yticks())
    assert len(ticks) >= 2
    assert all(float(t).is_integer() for t in ticks), ticks


def _drawn_texts(fig: Any) -> list[Any]:
    """Titles, axis labels, legend entries and the tick labels inside each axis' view."""
    texts = [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts += [t.label1 for t in axis.get_major_ticks() if low <= t.get_loc() <= high]
    return [t for t in texts if t.get_visible() and t.get_text()]


def test_no_text_overlaps_another(bench: tuple[Path, dict[str, Any]]) -> None:
    fig = _figure(bench[1])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    assert len(boxes) > 20
    clashes = [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]
    assert not clashes
    width, height = fig.canvas.get_width_height()
    outside = [
        text for text, box in boxes if box.x0 < 0 or box.x1 > width or box.y0 < 0 or box.y1 > height
    ]
    assert not outside


def test_rewards_have_a_colour_bar(bench: tuple[Path, dict[str, Any]]) -> None:
    fig = _figure(bench[1])
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "reward of the node" in labels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "reward of a dropped node" in legend


def test_the_png_shows_both_ends_of_the_reward_scale(bench: tuple[Path, dict[str, Any]]) -> None:
    pixels = imread(bench[0])[..., :3].reshape(-1, 3)
    cmap = colormaps[REWARD_CMAP]
    for end in (0.0, 1.0):
        target = cmap(end)[:3]
        close = ((pixels - target) ** 2).sum(axis=1) < 0.01
        assert close.sum() > 200, f"reward {end} colour missing"
    grey = int(DROPPED[1:3], 16) / 255
    assert (abs(pixels - grey).max(axis=1) < 0.02).sum() > 0


def test_without_rewards_no_colour_bar(bench: tuple[Path, dict[str, Any]]) -> None:
    query = next(iter(bench[1].values()))
    records = [RequestRecord(**r) for r in query["records"]]
    fig = timeline_figure([("spex", records)])
    assert len(fig.axes) == 1
