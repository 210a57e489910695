"""One query of a saved trace as a self-contained HTML page: `spex trace --out x.html`.

The page has no scripts and loads nothing: two inline SVG drawings and a legend. The
timeline has one bar per engine request, laid out on rows as the engine's slots ran them,
coloured by kind (primary, speculative used / wasted, aborted, reward). The search tree
has one circle per node, filled by its reward (red 0 -> yellow -> green 1, grey when never
scored), ringed black when finished, drawn hollow-grey when pruned, with a green dashed
ring when it was generated speculatively and adopted; the chosen path is drawn bold.
Hovering a node or bar shows its text and numbers.
"""

from __future__ import annotations

import html
from typing import Any

from spex_graph.bench.plot import COLOURS, assign_slots, category
from spex_graph.runtime.trace import RequestRecord
from spex_graph.tree import NodeStatus, SearchNode, SearchTree

__all__ = ["reward_colour", "trace_html"]

_UNSCORED = "#9e9e9e"
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 22px 0 6px; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; vertical-align: -1px;
  margin-right: 4px; border-radius: 2px; }}
svg {{ border: 1px solid #ddd; background: #fcfcfc; }}
</style></head><body>
<h1>{title}</h1>
<p>{summary}</p>
<h2>Requests over time (one row per engine slot)</h2>
<div class="legend">{timeline_legend}</div>
{timeline}
<h2>Search tree (depth left to right)</h2>
<div class="legend">{tree_legend}</div>
{tree}
</body></html>
"""


def reward_colour(reward: float | None) -> str:
    """Red (0) through yellow (0.5) to green (1); grey when the node was never scored."""
    if reward is None:
        return _UNSCORED
    r = min(max(float(reward), 0.0), 1.0)
    low, mid, high = (215, 48, 39), (250, 220, 80), (26, 152, 80)
    a, b, t = (low, mid, r * 2) if r < 0.5 else (mid, high, (r - 0.5) * 2)
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _timeline(records: list[RequestRecord], width: int) -> str:
    slots = assign_slots(records)
    if not slots:
        return f'<svg width="{width}" height="40"><text x="10" y="25">no requests</text></svg>'
    t0 = min(r.started_at or 0.0 for _, r in slots)
    t1 = max(r.finished_at or 0.0 for _, r in slots)
    span = max(t1 - t0, 1e-9)
    rows = max(row for row, _ in slots) + 1
    row_h, left, axis = 14, 40, 24
    height = rows * row_h + axis + 10
    inner = width - left - 10
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for row, rec in slots:
        x = left + ((rec.started_at or 0.0) - t0) / span * inner
        w = max(((rec.finished_at or 0.0) - (rec.started_at or 0.0)) / span * inner, 1.5)
        kind = category(rec)
        tip = html.escape(
            f"{kind} {rec.key}: {(rec.finished_at or 0) - (rec.started_at or 0):.3f}s, "
            f"{rec.completion_tokens} tokens, {rec.outcome}"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{5 + row * row_h}" width="{w:.1f}" height="{row_h - 3}" '
            f'fill="{COLOURS[kind]}"><title>{tip}</title></rect>'
        )
    base = 5 + rows * row_h + 4
    for k in range(6):
        x = left + inner * k / 5
        anchor = "end" if k == 5 else "middle"
        parts.append(
            f'<text x="{x:.0f}" y="{base + 14}" font-size="11" text-anchor="{anchor}">'
            f"{span * k / 5:.2f}s</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _tree_layout(tree: SearchTree) -> dict[int, float]:
    order: dict[int, float] = {}
    leaves = 0.0
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:  # post-order without recursion (deep MCTS trees)
        node_id, done = stack.pop()
        kids = tree.children_of.get(node_id, [])
        if not kids:
            order[node_id] = leaves
            leaves += 1
        elif done:
            order[node_id] = sum(order[k] for k in kids) / len(kids)
        else:
            stack.append((node_id, True))
            stack.extend((k, False) for k in reversed(kids))
    return order


def _node_svg(node: SearchNode, x: float, y: float, on_path: bool) -> str:
    fill = reward_colour(node.reward)
    radius = 7 if node.status == NodeStatus.TERMINAL else 5
    stroke, width, dash = "none", 0.0, ""
    if node.status == NodeStatus.TERMINAL:
        stroke, width = "#000000", 2.0
    elif node.status == NodeStatus.PRUNED:
        fill, stroke, width = "#ffffff", _UNSCORED, 1.5
    if node.speculative:
        stroke, width, dash = COLOURS["spec-used"], 2.0, ' stroke-dasharray="3,2"'
    if on_path:
        width += 1.0
    reward = "unscored" if node.reward is None else f"reward {node.reward:.3f}"
    answer = f", answer {node.answer}" if node.answer is not None else ""
    spec = ", speculative" if node.speculative else ""
    tip = html.escape(f"node {node.id} ({node.status}, {reward}{answer}{spec}): {node.text}")
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="{width}"{dash}><title>{tip}</title></circle>'
    )


def _tree(tree: SearchTree, chosen: int | None, width: int) -> str:
    order = _tree_layout(tree)
    depth = max(n.depth for n in tree.nodes)
    leaves = max(order.values(), default=0.0) + 1
    col = (width - 80) / max(depth, 1)
    row_h = 18
    height = int(leaves * row_h + 30)
    on_path = {n.id for n in tree.path(chosen)} | {0} if chosen is not None else set()

    def at(node: SearchNode) -> tuple[float, float]:
        return 30 + node.depth * col, 15 + order[node.id] * row_h

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for node in tree.nodes[1:]:
        parent = tree.node(node.parent or 0)
        bold = node.id in on_path and parent.id in on_path
        (x1, y1), (x2, y2) = at(parent), at(node)
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{"#000000" if bold else "#bbbbbb"}" stroke-width="{3 if bold else 1}"/>'
        )
    for node in tree.nodes:
        x, y = at(node)
        parts.append(_node_svg(node, x, y, node.id in on_path))
        if node.status == NodeStatus.TERMINAL and node.answer is not None:
            parts.append(
                f'<text x="{x + 10:.1f}" y="{y + 4:.1f}" font-size="11">'
                f"{html.escape(node.answer[:16])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _swatch(colour: str, label: str, style: str = "") -> str:
    return f'<span><i class="swatch" style="background:{colour};{style}"></i>{label}</span>'


def trace_html(query_id: str, entry: dict[str, Any], width: int = 1100) -> str:
    """The HTML page for one trace entry (``{"mode", "records", "tree", "chosen_node"}``)."""
    records = [RequestRecord(**r) for r in entry.get("records", [])]
    tree = SearchTree.model_validate(entry["tree"])
    chosen = entry.get("chosen_node")
    counts: dict[str, int] = {}
    for rec in records:
        counts[category(rec)] = counts.get(category(rec), 0) + 1
    answers = sorted({n.answer for n in tree.leaves() if n.answer is not None})
    summary = html.escape(
        f"mode {entry.get('mode', '?')}: {len(tree)} nodes, {len(records)} requests "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}); "
        f"answers reached: {', '.join(answers) or 'none'}; chosen leaf: {chosen}"
    )
    timeline_legend = "".join(_swatch(c, k) for k, c in COLOURS.items())
    tree_legend = "".join(
        [
            _swatch(reward_colour(0.0), "reward 0"),
            _swatch(reward_colour(0.5), "0.5"),
            _swatch(reward_colour(1.0), "1"),
            _swatch(_UNSCORED, "unscored"),
            _swatch("#ffffff", "pruned", f"border:1.5px solid {_UNSCORED}"),
            _swatch("#ffffff", "finished", "border:2px solid #000"),
            _swatch("#ffffff", "speculative, adopted", f"border:2px dashed {COLOURS['spec-used']}"),
            _swatch("#000000", "chosen path", "height:3px"),
        ]
    )
    return _PAGE.format(
        title=html.escape(f"spex trace: query {query_id}"),
        summary=summary,
        timeline_legend=timeline_legend,
        timeline=_timeline(records, width),
        tree_legend=tree_legend,
        tree=_tree(tree, chosen, width),
    )
