"""Timelines like the paper's figures: one Gantt bar per request, per engine slot.

Requests are laid out on rows ("slots") greedily by start time. Colours:
primary generation, speculative-used, speculative-wasted, cancelled, reward.
Needs matplotlib (`pip install 'spex-graph[plot]'`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spex_graph.errors import ConfigError
from spex_graph.runtime.trace import RequestRecord

COLOURS = {
    "primary": "#3b6fb6",
    "spec-used": "#3aa657",
    "spec-wasted": "#f0a030",
    "cancelled": "#d64545",
    "reward": "#8a5cc2",
}


def category(record: RequestRecord) -> str:
    """Which legend entry a request belongs to."""
    if record.kind == "reward":
        return "reward"
    if record.outcome == "cancelled":
        return "cancelled"
    if not record.speculative:
        return "primary"
    return "spec-used" if record.outcome == "used" else "spec-wasted"


def assign_slots(records: Sequence[RequestRecord]) -> list[tuple[int, RequestRecord]]:
    """Greedy interval partitioning: each request gets the first free row."""
    rows: list[float] = []
    out: list[tuple[int, RequestRecord]] = []
    spans = [r for r in records if r.started_at is not None and r.finished_at is not None]
    for rec in sorted(spans, key=lambda r: (r.started_at or 0.0, r.request_id)):
        start, end = rec.started_at or 0.0, rec.finished_at or 0.0
        row = next((i for i, busy_until in enumerate(rows) if busy_until <= start), None)
        if row is None:
            rows.append(end)
            row = len(rows) - 1
        else:
            rows[row] = end
        out.append((row, rec))
    return out


def plot_timelines(panels: Sequence[tuple[str, Sequence[RequestRecord]]], path: str | Path) -> Path:
    """Write a PNG (or SVG by extension) with one Gantt panel per (title, records)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib: pip install 'spex-graph[plot]' (or pip install matplotlib)"
        ) from None
    path = Path(path)
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.2 * len(panels)), squeeze=False)
    t_end = (
        max(
            (r.finished_at or 0.0) - min((x.enqueued_at for x in recs), default=0.0)
            for _, recs in panels
            for r in recs
        )
        if any(recs for _, recs in panels)
        else 1.0
    )
    for ax, (title, records) in zip(axes[:, 0], panels, strict=True):
        t0 = min((r.enqueued_at for r in records), default=0.0)
        for row, rec in assign_slots(records):
            start = (rec.started_at or 0.0) - t0
            width = max((rec.finished_at or 0.0) - (rec.started_at or 0.0), 1e-6)
            ax.barh(row, width, left=start, height=0.8, color=COLOURS[category(rec)], linewidth=0)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlim(0, t_end * 1.02)
        ax.set_ylabel("slot")
        ax.invert_yaxis()
    axes[-1, 0].set_xlabel("seconds since the query started")
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items()]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
