"""Save per-query traces (requests + search tree) and render them: `spex trace`.

A trace file is JSON: {"queries": {query_id: {"mode", "records": [RequestRecord...],
"tree": SearchTree}}}. `render_trace` draws, for one query, its request
timeline (as `--plot` does) and its search tree: nodes by depth (left to right),
coloured by reward, terminal leaves ringed, the chosen path in bold.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from spex_graph.bench.runner import ModeRun
from spex_graph.errors import ConfigError
from spex_graph.runtime.trace import RequestRecord
from spex_graph.tree import NodeStatus, SearchTree


def save_traces(runs: list[ModeRun], path: str | Path, mode: str = "spex") -> Path:
    """Write the traces of `mode` (else the last mode run) to `path`."""
    run = next((r for r in runs if r.mode == mode), runs[-1])
    chosen = {r.get("query_id"): r.get("chosen_node") for r in run.results}
    queries = {
        qid: {
            "mode": run.mode,
            "chosen_node": chosen.get(qid),
            "records": [dataclasses.asdict(rec) for rec in run.records.get(qid, [])],
            "tree": tree,
        }
        for qid, tree in run.trees.items()
    }
    path = Path(path)
    path.write_text(json.dumps({"queries": queries}))
    return path


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read a trace file, with a one-line error when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
        return dict(data["queries"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a spex trace ({type(exc).__name__}); write one with "
            "spex bench ... --trace PATH"
        ) from None


def render_trace(path: str | Path, out: str | Path, query_id: str | None = None) -> Path:
    """Render one query of a trace file to HTML (self-contained), PNG or SVG (by `out`'s
    extension)."""
    queries = load_trace(path)
    if not queries:
        raise ConfigError(f"{path} holds no queries")
    qid = query_id or sorted(queries)[0]
    if qid not in queries:
        raise ConfigError(f"query {qid!r} is not in {path}; it has {', '.join(sorted(queries))}")
    entry = queries[qid]
    if Path(out).suffix.lower() in (".html", ".htm"):
        from spex_graph.bench.trace_html import trace_html

        Path(out).write_text(trace_html(qid, entry), encoding="utf-8")
        return Path(out)
    records = [RequestRecord(**r) for r in entry["records"]]
    tree = SearchTree.model_validate(entry["tree"])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("rendering needs matplotlib: pip install 'spex-graph[plot]'") from None
    from spex_graph.bench.plot import COLOURS, assign_slots, category

    fig, (ax_t, ax_g) = plt.subplots(2, 1, figsize=(12, 9), height_ratios=[1, 1.3])
    t0 = min((r.enqueued_at for r in records), default=0.0)
    for row, rec in assign_slots(records):
        start = (rec.started_at or 0.0) - t0
        width = max((rec.finished_at or 0.0) - (rec.started_at or 0.0), 1e-6)
        ax_t.barh(row, width, left=start, height=0.8, color=COLOURS[category(rec)], linewidth=0)
    ax_t.invert_yaxis()
    from matplotlib.patches import Patch

    ax_t.legend(
        handles=[Patch(color=c, label=k) for k, c in COLOURS.items()],
        loc="lower right",
        fontsize=7,
        ncol=len(COLOURS),
    )
    ax_t.set_title(f"{entry['mode']}: query {qid} requests", loc="left", fontsize=10)
    ax_t.set_xlabel("seconds")

    order: dict[int, float] = {}
    leaves = 0.0

    def place(node_id: int) -> float:
        nonlocal leaves
        kids = tree.children_of.get(node_id, [])
        if not kids:
            order[node_id] = leaves
            leaves += 1
        else:
            order[node_id] = sum(place(k) for k in kids) / len(kids)
        return order[node_id]

    place(0)
    chosen = entry.get("chosen_node")
    on_path = {n.id for n in tree.path(chosen)} | {0} if chosen is not None else set()
    cmap = plt.get_cmap("RdYlGn")
    for node in tree.nodes[1:]:
        parent = node.parent or 0
        bold = node.id in on_path and parent in on_path
        ax_g.plot(
            [tree.node(parent).depth, node.depth],
            [order[parent], order[node.id]],
            color="black" if bold else "#bbbbbb",
            linewidth=2.2 if bold else 0.7,
            zorder=1,
        )
    for node in tree.nodes:
        reward = node.reward if node.reward is not None else 0.5
        ax_g.scatter(
            node.depth,
            order[node.id],
            s=60 if node.status == NodeStatus.TERMINAL else 25,
            color=cmap(reward),
            edgecolors="black" if node.status == NodeStatus.TERMINAL else "none",
            zorder=2,
        )
        if node.status == NodeStatus.TERMINAL and node.answer is not None:
            ax_g.annotate(node.answer[:12], (node.depth, order[node.id]), fontsize=6, xytext=(4, 0),
                          textcoords="offset points")  # fmt: skip
    ax_g.set_title("search tree (colour = reward, ringed = finished, bold = chosen path)",
                   loc="left", fontsize=10)  # fmt: skip
    ax_g.set_xlabel("depth")
    ax_g.set_yticks([])
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
