"""The ask-tell contract every search algorithm follows.

An algorithm never awaits, sleeps or reads a clock. The driver (the LangGraph
graph, a plain asyncio loop, the simulator or a unit test) repeats:

    orders = algo.propose(tree, state)      # what to expand next; [] => finished
    ... generate the children, then score them ...
    state = algo.observe(tree, state, new_ids)

`SearchState` is plain data, so it checkpoints with the tree. `observe` may
change the statuses of nodes in the tree it is given (prune, mark selected)
and returns the new state; callers that need the old tree pass a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from spex_graph.tree import SearchTree
from spex_graph.voting import Aggregation, VoteMethod


@dataclass(frozen=True)
class ExpandOrder:
    """Generate `n` new children below `node_id`.

    Attributes:
        node_id: the parent node.
        n: number of new children (each is one request with its own seed).
        until_end: generate the whole remaining solution instead of one step
            (best-of-N, rollouts).
    """

    node_id: int
    n: int
    until_end: bool = False


@dataclass(frozen=True)
class AlgorithmTraits:
    """What a search algorithm is like, for the policies that adapt to it (speculation,
    the budget, early termination): explicit, instead of guessed from names.

    Attributes:
        layered: every selection is one whole layer (the BFS family: REBASE, beam,
            ETS, best-of-N, ToT-BFS); else nodes are expanded a few at a time
            (MCTS, global best-first).
        children_per_round: children one selection asks for at most (width, times
            `expansion` for beam and ToT-BFS).
        rollouts: MCTS-style rollout budget; None for other searches.
        reward_prior: what speculation guesses for a reward that has not arrived:
            "siblings" (the mean of the node's siblings' known rewards) or "layer"
            (the mean of its layer's known rewards, for a query alone in the budget).
            Measured per algorithm; see `Speculator._predict`.
        fixed_fan_out: a node, once chosen, gets a child count that no reward changes
            (beam, best-first, MCTS, best-of-N), so speculation never hedges with
            extra children of it: the search can never ask for them. (Best-first's
            last node before its node budget runs out may get fewer; a hedge up to
            the full count could serve it there, a case too rare to hedge for.)
    """

    layered: bool
    children_per_round: int
    rollouts: int | None = None
    reward_prior: Literal["siblings", "layer"] = "siblings"
    fixed_fan_out: bool = False


@runtime_checkable
class LeafSelecting(Protocol):
    """An algorithm whose next expansions come from a leaf selection that virtual
    visits can spread (MCTS), so speculation can pre-explore several at once."""

    def select_leaf(
        self,
        tree: SearchTree,
        state: SearchState,
        virtual_visits: Mapping[int, int] | None = None,
    ) -> int:
        """The leaf the next rollout would extend, counting `virtual_visits` extra visits."""
        ...


def child_keys(
    tree: SearchTree, orders: Sequence[ExpandOrder]
) -> list[tuple[ExpandOrder, tuple[int, ...]]]:
    """Each child the orders ask for, with its path key (child indices from the root).

    The one numbering every caller uses: the real `expand`, the speculator's
    predictions and the reconciliation of the two. Children of a parent are numbered
    after those it already has, in order; exact mode depends on all of them agreeing.
    """
    keys: list[tuple[ExpandOrder, tuple[int, ...]]] = []
    next_index: dict[int, int] = {}
    for order in orders:
        parent_key = tree.path_key(order.node_id)
        first = next_index.get(order.node_id, len(tree.children_of.get(order.node_id, [])))
        keys.extend((order, (*parent_key, first + j)) for j in range(order.n))
        next_index[order.node_id] = first + order.n
    return keys


class SearchState(BaseModel):
    """Algorithm bookkeeping, shared by every algorithm (unused fields stay empty).

    Attributes:
        frontier: nodes the next `propose` expands (BFS family).
        allocation: children per frontier node chosen by the last selection.
        open_nodes: best-first's open list (scored, unexpanded, non-terminal).
        iteration: number of propose/observe rounds done.
        done: the search has finished.
        stop_reason: why it finished ("width", "depth", "rollouts", "early-stop", ...).
        visits, value_sum: MCTS statistics per node id (string keys for JSON).
        cursor: MCTS node the current rollout is extending; None between rollouts.
        rollouts_done: MCTS rollouts completed.
    """

    frontier: list[int] = Field(default_factory=list)
    allocation: dict[int, int] = Field(default_factory=dict)
    open_nodes: list[int] = Field(default_factory=list)
    iteration: int = 0
    done: bool = False
    stop_reason: str | None = None
    visits: dict[int, int] = Field(default_factory=dict)
    value_sum: dict[int, float] = Field(default_factory=dict)
    cursor: int | None = None
    rollouts_done: int = 0

    def clone(self) -> SearchState:
        """A fast independent copy (containers copied, values are immutable)."""
        return SearchState.model_construct(
            frontier=list(self.frontier),
            allocation=dict(self.allocation),
            open_nodes=list(self.open_nodes),
            iteration=self.iteration,
            done=self.done,
            stop_reason=self.stop_reason,
            visits=dict(self.visits),
            value_sum=dict(self.value_sum),
            cursor=self.cursor,
            rollouts_done=self.rollouts_done,
        )


@runtime_checkable
class SearchAlgorithm(Protocol):
    """A reward-guided tree search in ask-tell form (see the module docstring).

    `name` (short name used by the CLI and traces: "rebase", "beam", ...) and
    `width` (the leaves / beams / samples it aims for) are read-only.
    """

    @property
    def name(self) -> str:
        """Short name used by the CLI and traces."""
        ...

    @property
    def width(self) -> int:
        """The search's width."""
        ...

    @property
    def traits(self) -> AlgorithmTraits:
        """What kind of search this is (see AlgorithmTraits)."""
        ...

    @property
    def vote(self) -> VoteMethod:
        """How the finished leaves pick the final answer."""
        ...

    @property
    def aggregation(self) -> Aggregation:
        """How a leaf's path rewards combine into its vote weight."""
        ...

    def start(self, tree: SearchTree) -> SearchState:
        """Initial state for a tree that holds only the root."""
        ...

    def propose(self, tree: SearchTree, state: SearchState) -> list[ExpandOrder]:
        """The next expansions; an empty list means the search is finished."""
        ...

    def observe(self, tree: SearchTree, state: SearchState, new_ids: list[int]) -> SearchState:
        """Take in children that were generated *and scored* since the last propose."""
        ...

    def candidates(self, tree: SearchTree, state: SearchState) -> list[int]:
        """Terminal nodes allowed to vote in the final answer."""
        ...
