"""A scripted driver: runs a search algorithm over a tree whose children are given by a script.

A script maps the path of a new child (its child indices from the root) and
the order's `until_end` flag to a `Step` (text, reward, answer, end of text),
or to None when the engine "fails" to produce that child. The driver does
exactly what the graph does around an algorithm: add the children of every
order, mark them TERMINAL when they hold an answer, end the text, or reach
the depth cap, score them, and call `observe` with all of the round's ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from spex_graph.algorithms import ExpandOrder, SearchAlgorithm, SearchState
from spex_graph.tree import NodeStatus, SearchTree
from spex_graph.voting import VoteResult, vote

Path = tuple[int, ...]


@dataclass(frozen=True)
class Step:
    """What the engine and the reward model return for one child."""

    text: str
    reward: float
    answer: str | None = None
    ends: bool = False


Script = Callable[[Path, bool], Step | None]


@dataclass
class Run:
    """The outcome of a scripted search."""

    algo: SearchAlgorithm
    tree: SearchTree
    state: SearchState
    rounds: list[list[ExpandOrder]] = field(default_factory=list)
    finished_before: list[int] = field(default_factory=list)
    states: list[SearchState] = field(default_factory=list)

    def vote(self, method: str | None = None) -> VoteResult:
        """The final vote over the algorithm's candidates (answers compared as strings)."""
        return vote(
            self.tree,
            self.algo.candidates(self.tree, self.state),
            lambda a, b: a == b,
            method=method or getattr(self.algo, "vote", "weighted"),  # type: ignore[arg-type]
            aggregation=getattr(self.algo, "aggregation", "min"),
        )

    @property
    def generated(self) -> int:
        """Nodes generated (the root excluded)."""
        return len(self.tree) - 1


def run(
    algo: SearchAlgorithm,
    script: Script,
    *,
    max_depth: int | None = None,
    max_rounds: int = 2000,
) -> Run:
    """Drive `algo` over `script` to the end; fail if it does not finish in `max_rounds`."""
    cap = max_depth if max_depth is not None else int(getattr(algo, "max_depth", 20))
    tree = SearchTree()
    state = algo.start(tree)
    out = Run(algo, tree, state)
    for _ in range(max_rounds):
        orders = algo.propose(tree, state)
        if not orders:
            out.state = state
            assert algo.propose(tree, state) == [], "propose must stay empty once finished"
            return out
        assert algo.propose(tree, state) == orders, "propose must not change the state"
        out.rounds.append(orders)
        out.finished_before.append(sum(1 for n in tree.nodes if n.status == NodeStatus.TERMINAL))
        new_ids: list[int] = []
        for order in orders:
            for _ in range(order.n):
                path = (*tree.path_key(order.node_id), len(tree.children_of.get(order.node_id, [])))
                step = script(path, order.until_end)
                if step is None:
                    continue
                child = tree.add_child(order.node_id, text=step.text)
                ended = step.ends or order.until_end
                if step.answer is not None or ended or child.depth >= cap:
                    child.status = NodeStatus.TERMINAL
                    child.answer = step.answer
                child.reward = step.reward
                new_ids.append(child.id)
        state = algo.observe(tree, state, new_ids)
        out.states.append(state)
        out.state = state
    raise AssertionError(f"{algo.name} did not finish within {max_rounds} rounds")


def random_script(
    seed: int,
    p_end: float = 0.3,
    answers: Sequence[str] = ("1", "2", "3"),
) -> Script:
    """Random rewards and endings, a pure function of (seed, path)."""

    def script(path: Path, until_end: bool) -> Step:
        rng = random.Random(f"{seed}:{path}")
        reward = round(rng.random(), 3)
        ends = until_end or rng.random() < p_end
        answer = rng.choice(list(answers)) if ends else None
        return Step(f"so the value is {rng.randint(0, 3)}", reward, answer, ends)

    return script


def dominant_script(good: str = "42", seed: int = 0, end_depth: int = 3) -> Script:
    """Even first-step children start a good track (high rewards, answer `good`);
    odd ones a bad track (low rewards, scattered wrong answers). Paths end at
    `end_depth` (or at once for until_end orders)."""

    def script(path: Path, until_end: bool) -> Step:
        rng = random.Random(f"dom{seed}:{path}")
        is_good = path[0] % 2 == 0
        reward = rng.uniform(0.8, 1.0) if is_good else rng.uniform(0.0, 0.3)
        ends = until_end or len(path) >= end_depth
        answer = (good if is_good else rng.choice(["13", "17", "19"])) if ends else None
        return Step(f"track {int(is_good)} step {len(path)}", round(reward, 3), answer, ends)

    return script


def constant_script(reward: float, end_depth: int = 3, answer: str = "7") -> Script:
    """Every child has the same reward and text; paths end at `end_depth`."""

    def script(path: Path, until_end: bool) -> Step:
        ends = until_end or len(path) >= end_depth
        return Step("same step", reward, answer if ends else None, ends)

    return script


def table_script(table: Mapping[Path, Step], default: Step | None = None) -> Script:
    """Children looked up by path; a missing path gives `default` (None: no child)."""

    def script(path: Path, until_end: bool) -> Step | None:
        return table.get(path, default)

    return script
