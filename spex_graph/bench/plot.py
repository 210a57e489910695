"""Timelines like the paper's figures: one Gantt bar per request, per engine slot.

Requests are laid out on rows ("slots") greedily by start time. Colours:
primary generation, speculative-used, speculative-wasted, cancelled, reward; with the
final tree's rewards, reward requests and a tick at the end of each generation take the
reward of their node on a colour bar.
Needs matplotlib (`pip install 'spex-graph[plot]'`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spex_graph.errors import ConfigError
from spex_graph.runtime.trace import RequestRecord

COLOURS = {
    "primary": "#3b6fb6",
    "spec-used": "#3aa657",
    "spec-wasted": "#f0a030",
    "cancelled": "#d64545",
    "reward": "#8a5cc2",
}
# Reward 0 -> 1 on a scale whose hues the category colours above do not use.
REWARD_CMAP = "cool"
DROPPED = "#b0b0b0"  # a reward request whose node is not in the final tree


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


def node_rewards(tree: Mapping[str, Any]) -> dict[str, float]:
    """Reward of every scored node of a final tree (JSON-mode dict), by trace key ("0/2/1")."""
    from spex_graph.runtime.dispatcher import key_str
    from spex_graph.tree import SearchTree

    searched = SearchTree.model_validate(tree)
    return {
        key_str(searched.path_key(n.id)): float(n.reward)
        for n in searched.nodes[1:]
        if n.reward is not None
    }


def plot_timelines(
    panels: Sequence[tuple[str, Sequence[RequestRecord]]],
    path: str | Path,
    rewards: Sequence[Mapping[str, float]] | None = None,
) -> Path:
    """Write a PNG (or SVG by extension) with one Gantt panel per (title, records).

    `rewards` (one mapping per panel, from `node_rewards`) colours each reward request and
    a tick at the end of each generation by the reward of its node, on a colour bar.
    """
    path = Path(path)
    fig = timeline_figure(panels, rewards)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timeline_figure(
    panels: Sequence[tuple[str, Sequence[RequestRecord]]],
    rewards: Sequence[Mapping[str, float]] | None = None,
) -> Any:
    """The matplotlib Figure `plot_timelines` saves (see there)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib: pip install 'spex-graph[plot]' (or pip install matplotlib)"
        ) from None
    per_panel = list(rewards) if rewards is not None else [{} for _ in panels]
    if len(per_panel) != len(panels):
        raise ConfigError(f"{len(panels)} panels but {len(per_panel)} reward maps")
    slots = [assign_slots(records) for _, records in panels]
    heights = [max(3, 1 + max((row for row, _ in laid), default=0)) for laid in slots]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(12, 1.4 + sum(min(0.22 * h, 6.0) + 0.9 for h in heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": [min(0.22 * h, 6.0) + 0.9 for h in heights]},
    )
    t_end = max(
        (
            (r.finished_at or 0.0) - min(x.enqueued_at for x in recs)
            for _, recs in panels
            if recs
            for r in recs
        ),
        default=1.0,
    )
    cmap = matplotlib.colormaps[REWARD_CMAP]
    scale = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
    scored = False
    for ax, (title, records), laid, reward_of in zip(
        axes[:, 0], panels, slots, per_panel, strict=True
    ):
        t0 = min((r.enqueued_at for r in records), default=0.0)
        for row, rec in laid:
            start = (rec.started_at or 0.0) - t0
            width = max((rec.finished_at or 0.0) - (rec.started_at or 0.0), 1e-6)
            reward = reward_of.get(rec.key) if rec.outcome == "used" else None
            colour: Any = COLOURS[category(rec)]
            if rec.kind == "reward" and reward_of:
                colour = DROPPED if reward is None else cmap(reward)
            ax.barh(row, width, left=start, height=0.8, color=colour, linewidth=0)
            if rec.kind == "policy" and reward is not None:
                # the reward this generation's node got, as a tick at the bar's end
                ax.plot(start + width, row, marker="|", ms=7, mew=2.5, color=cmap(reward))
            scored = scored or reward is not None
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlim(0, t_end * 1.02)
        last = max((row for row, _ in laid), default=0)
        ticks = MaxNLocator(nbins=8, integer=True, min_n_ticks=1).tick_values(0, last)
        ax.set_yticks([int(t) for t in ticks if 0 <= t <= last])  # whole slots only
        ax.set_ylim(last + 0.6, -0.6)  # slot 0 on top
        ax.set_ylabel("slot")
    axes[-1, 0].set_xlabel("seconds since the query started")
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items()]
    if scored:
        handles[-1] = Patch(color=cmap(0.75), label="reward (colour: its value)")
        handles.append(Patch(color=DROPPED, label="reward of a dropped node"))
    fig.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.93 if scored else 1, 1 - 0.5 / fig.get_figheight()))
    if scored:
        bar_ax = fig.add_axes((0.94, 0.12, 0.012, 0.7))
        fig.colorbar(scale, cax=bar_ax).set_label("reward of the node", fontsize=8)
    return fig
