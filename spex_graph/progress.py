"""Live progress inside one search: layer, nodes, tokens/s and the current best answer.

`SearchProgress` folds the search's stream events (``reasoner.astream``) into those
numbers; `ProgressLine` shows them on a terminal line that rewrites itself (on a pipe or
file: a new line when the layer changes, at most every few seconds otherwise), and
`search_with_progress` runs one search while doing both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from spex_graph.result import SearchResult

__all__ = ["ProgressLine", "SearchProgress", "search_with_progress"]


@dataclass
class SearchProgress:
    """The live numbers of one search, updated from its stream events.

    Attributes:
        layer: the deepest step generated so far (1 = first step).
        nodes: nodes in the tree, root included.
        tokens: tokens generated for nodes in the tree.
        best_answer: the answer of the highest-reward finished path so far.
        best_reward: that path's reward.
        started: when the search started (``time.perf_counter``).
    """

    layer: int = 0
    nodes: int = 1
    tokens: int = 0
    best_answer: str | None = None
    best_reward: float = float("-inf")
    started: float = field(default_factory=time.perf_counter)
    _answers: dict[int, str] = field(default_factory=dict)

    def update(self, event: dict[str, Any]) -> None:
        """Fold one stream event (``select``/``expand``/``evaluate``/``answer``) in."""
        kind = event.get("event")
        if kind == "expand":
            self.nodes = int(event.get("tree_size", self.nodes))
            for node in event.get("new_nodes", []):
                self.layer = max(self.layer, int(node.get("depth", 0)))
                self.tokens += int(node.get("tokens", 0))
                if node.get("answer") is not None:
                    self._answers[int(node["id"])] = str(node["answer"])
        elif kind == "evaluate":
            for node_id, reward in event.get("rewards", {}).items():
                answer = self._answers.get(int(node_id))
                if answer is not None and reward is not None and reward > self.best_reward:
                    self.best_answer, self.best_reward = answer, float(reward)
        elif kind == "answer" and event.get("answer") is not None:
            self.best_answer = str(event["answer"])

    def tokens_per_second(self, now: float | None = None) -> float:
        """Generated tokens per wall-clock second since the start."""
        elapsed = (time.perf_counter() if now is None else now) - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        """One status line, e.g. ``layer 3 | 19 nodes | 41 tok/s | best: 387 | 12s``."""
        now = time.perf_counter() if now is None else now
        best = self.best_answer if self.best_answer is not None else "-"
        return (
            f"layer {self.layer} | {self.nodes} nodes | {self.tokens_per_second(now):.0f} tok/s"
            f" | best: {best} | {now - self.started:.0f}s"
        )


class ProgressLine:
    """A status line on a stream: rewritten in place on a terminal, appended on a pipe."""

    def __init__(
        self, stream: TextIO | None = None, *, prefix: str = "", every_s: float = 5.0
    ) -> None:
        """Write to ``stream`` (default stderr); on a pipe at most every ``every_s``
        seconds, and whenever the layer changes."""
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.every_s = every_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_write = float("-inf")
        self._last_layer = -1
        self._width = 0

    def show(self, progress: SearchProgress) -> None:
        """Show the current numbers (throttled)."""
        now = time.perf_counter()
        new_layer = progress.layer != self._last_layer
        if self.tty:
            if not new_layer and now - self._last_write < 0.2:
                return
            text = self.prefix + progress.line(now)
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            if not new_layer and now - self._last_write < self.every_s:
                return
            self.stream.write(self.prefix + progress.line(now) + "\n")
        self.stream.flush()
        self._last_write, self._last_layer = now, progress.layer

    def close(self) -> None:
        """End the line (terminal: clear it so the next output starts clean)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0


async def search_with_progress(
    reasoner: Any,
    question: Any,
    on_progress: Callable[[SearchProgress], None],
    config: Any = None,
) -> SearchResult:
    """Search ``question`` with ``reasoner.astream``, calling ``on_progress`` after each
    event; return the `SearchResult` (the reasoner must have ``output="result"``)."""
    progress = SearchProgress()
    result: SearchResult | None = None
    async for item in reasoner.astream(question, config):
        if isinstance(item, SearchResult):
            result = item
        elif isinstance(item, dict):
            progress.update(item)
            on_progress(progress)
    if result is None:
        raise RuntimeError("the search ended without a result")
    return result
