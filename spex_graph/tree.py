"""The search tree: a flat, serialisable table of nodes.

Node ids are indices into the table, owned by the tree (never a global
counter), so a tree checkpoints, restores and compares as plain data. A
node is addressed across runs by its *path* of child indices from the root,
which is also what its sampling seed derives from: the same path always
gets the same seed, whether it is expanded speculatively or not.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel, Field, PrivateAttr


class NodeStatus(StrEnum):
    """Where a node stands in the search."""

    ACTIVE = "active"
    """Generated and part of the real search (the non-speculative tree)."""
    PRUNED = "pruned"
    """Dropped by the algorithm (low reward, early termination)."""
    TERMINAL = "terminal"
    """Finished: holds a final answer, hit the depth cap, or ended the text."""


class SearchNode(BaseModel):
    """One reasoning step: the text generated below its parent.

    Attributes:
        id: index in the tree's node table.
        parent: parent id; None for the root (whose text is empty).
        child_index: position among the parent's children (drives the seed).
        depth: steps from the root (root = 0).
        text: the step's generated text (without the step delimiter).
        prompt_tokens, completion_tokens, cached_tokens: engine token counts.
        reward: this step's reward (None until scored).
        status: see NodeStatus.
        answer: extracted final answer, when the step ends the solution.
        finish_reason: the engine's finish reason ("stop", "length", ...).
        speculative: generated ahead of the real selection and then adopted.
        created_at, scored_at: monotonic clock readings (seconds).
        token_logprobs: the step's token logprobs when the reward reads them, kept in
            the checkpointed tree so a resumed search scores the node exactly.
    """

    id: int
    parent: int | None
    child_index: int = 0
    depth: int = 0
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reward: float | None = None
    status: NodeStatus = NodeStatus.ACTIVE
    answer: str | None = None
    finish_reason: str | None = None
    speculative: bool = False
    created_at: float = 0.0
    scored_at: float | None = None
    token_logprobs: list[float] = Field(default_factory=list)


_BLANK = SearchNode(id=0, parent=None)


class SearchTree(BaseModel):
    """A flat table of SearchNodes; node 0 is the root (the question)."""

    nodes: list[SearchNode] = Field(default_factory=lambda: [SearchNode(id=0, parent=None)])
    children_of: dict[int, list[int]] = Field(default_factory=dict)
    # path keys never change once a node exists (ids and parents are fixed): memoised
    _keys: dict[int, tuple[int, ...]] = PrivateAttr(default_factory=dict)

    @property
    def root(self) -> SearchNode:
        """The root node (the question, empty text)."""
        return self.nodes[0]

    def clone(self) -> SearchTree:
        """A fast independent copy (nodes hold only immutable values, so shallow node
        copies suffice)."""
        copy = SearchTree.model_construct(
            nodes=[n.model_copy() for n in self.nodes],
            children_of={k: list(v) for k, v in self.children_of.items()},
        )
        copy._keys = dict(self._keys)
        return copy

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, node_id: int) -> SearchNode:
        """The node with this id."""
        return self.nodes[node_id]

    def children(self, node_id: int) -> list[SearchNode]:
        """Children of a node, in child-index order."""
        return [self.nodes[i] for i in self.children_of.get(node_id, [])]

    def add_child(self, parent: int, **fields: object) -> SearchNode:
        """Append a child of `parent`; its id and child index are assigned here."""
        siblings = self.children_of.setdefault(parent, [])
        # copying a default node: the search calls this in hot loops with trusted values,
        # and model_copy is ~3x faster than model_construct (no per-field default lookup)
        node = _BLANK.model_copy(
            update={
                "id": len(self.nodes),
                "parent": parent,
                "child_index": len(siblings),
                "depth": self.nodes[parent].depth + 1,
                **fields,
            }
        )
        self.nodes.append(node)
        siblings.append(node.id)
        return node

    def path(self, node_id: int) -> list[SearchNode]:
        """Nodes from the first step down to `node_id` (root excluded)."""
        out: list[SearchNode] = []
        cur: int | None = node_id
        while cur is not None and cur != 0:
            node = self.nodes[cur]
            out.append(node)
            cur = node.parent
        out.reverse()
        return out

    def path_key(self, node_id: int) -> tuple[int, ...]:
        """Child indices from the root to `node_id`: its identity across runs."""
        key = self._keys.get(node_id)
        if key is None:
            key = tuple(n.child_index for n in self.path(node_id))
            self._keys[node_id] = key
        return key

    def steps(self, node_id: int) -> list[str]:
        """The step texts from the root to `node_id`."""
        return [n.text for n in self.path(node_id)]

    def path_rewards(self, node_id: int) -> list[float]:
        """Rewards of the steps on the path (unscored steps count as 0.0)."""
        return [n.reward if n.reward is not None else 0.0 for n in self.path(node_id)]

    def decisions(self) -> list[tuple[object, ...]]:
        """The tree without timings: what the search decided, for exactness checks."""
        return [
            (n.id, n.parent, n.child_index, n.text, n.reward, str(n.status), n.answer)
            for n in self.nodes
        ]

    def leaves(self) -> list[SearchNode]:
        """Terminal nodes, in id order."""
        return [n for n in self.nodes if n.status == NodeStatus.TERMINAL]


def derive_seed(query_seed: int, path: tuple[int, ...]) -> int:
    """Sampling seed of the child at `path`: a stable hash of (query seed, path).

    The same node gets the same seed whether it is expanded as primary or
    speculative work, so the engine returns the same text for it.
    """
    digest = hashlib.blake2b(
        f"{query_seed}:{'/'.join(map(str, path))}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF
