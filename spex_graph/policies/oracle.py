"""The oracle: speculation with perfect foresight, the limit SPEX is measured against.

Given the tree a non-speculative run of the same query selected (its node
paths), the oracle starts every child the moment its parent's text exists, so
each branch runs at generation speed and rewards only gate the final answer.
Its latency is the critical path of the chosen branches on the same engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spex_graph.algorithms.base import ExpandOrder, SearchState
from spex_graph.policies.speculation import Speculator
from spex_graph.requests import generation_builder
from spex_graph.runtime.dispatcher import ExpansionKey
from spex_graph.tree import SearchTree


@dataclass
class OracleSpeculator(Speculator):
    """A Speculator that launches exactly the nodes the real search will select.

    Attributes:
        chosen: path keys of every node the baseline run generated.
        until_end: whether those nodes are whole solutions (best-of-N).
    """

    chosen: frozenset[ExpansionKey] = frozenset()
    until_end: bool = False
    _children: dict[ExpansionKey, list[ExpansionKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in sorted(self.chosen):
            self._children.setdefault(key[:-1], []).append(key)

    def _on_event(self, event: str, key: ExpansionKey) -> None:
        if self._stopped:
            return
        if event == "expanded":
            self._pipeline_score(key)
            self._launch_children(key)

    def commit(self, tree: SearchTree, search: SearchState) -> None:
        """Start the root's chosen children (idempotent: in-flight keys are joined)."""
        self._launch_children(())

    def reconcile(self, tree: SearchTree, orders: Sequence[ExpandOrder]) -> None:
        """Nothing to cancel: the oracle never mispredicts."""

    def _launch_children(self, parent: ExpansionKey) -> None:
        texts = self._path_texts(parent) if parent else []
        if texts is None:
            return
        for key in self._children.get(parent, []):
            if self.session.in_flight(key):
                continue
            build = generation_builder(self.ctx, self.problem, texts, key, until_end=self.until_end)
            self.session.expand(key, build, speculative=True)
