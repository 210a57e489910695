"""Replay search trees recorded on a real engine (`spex record-trees`) with GPU timing.

`spex bench --backend sim --workload replay:PATH` searches the recorded problems
again on the simulated engines of a preset: every node the recorded search generated
comes back with its recorded token count, reward and answer, so the baseline rebuilds
the recorded tree (same algorithm, width and seed as the recording) and its timing is
what the chosen GPUs would take for those real step lengths.

Speculative work asks for paths the recorded run never generated. Those are drawn
from the recorded nodes at the same depth of the same problem (deterministically by
the request's seed): real step lengths, rewards and answers, but not a real path. A
synthetic node's children are synthetic too. Recorded leaves that ended the text
without an answer before the depth cap replay as terminal leaves with no answer.

Steps travel as `SimStep` tags: `ok` says whether the node is a recorded one, `salt`
is the recorded node's id, `n` its token count. The node's path key (which recorded
child a request asks for) is recovered from the request's sampling seed, which
derives from (config seed, problem id, path).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spex_graph.errors import ConfigError
from spex_graph.requests import hash_text
from spex_graph.rewards.base import ScoreRequest
from spex_graph.sim.backend import problem_key
from spex_graph.sim.engine import SimEngine
from spex_graph.sim.reward import SimPRM
from spex_graph.sim.workload import SimStep, SimTask, SyntheticWorkload, parse_steps, stable_hash
from spex_graph.tasks.base import Problem, Task
from spex_graph.tree import derive_seed

__all__ = ["RecordedPRM", "RecordedTask", "RecordedWorkload", "load_recorded_workload"]

NO_ANSWER = "?"
_MAX_CHILD_INDEX = 256


@dataclass
class _Tree:
    nodes: dict[int, Mapping[str, Any]]
    children: dict[int, dict[int, int]]
    by_depth: dict[int, list[int]]
    key_of: dict[int, tuple[int, ...]]


def _index(row: Mapping[str, Any]) -> _Tree:
    nodes = {int(n["id"]): n for n in row.get("nodes", [])}
    children: dict[int, dict[int, int]] = {}
    by_depth: dict[int, list[int]] = {}
    for node_id, node in sorted(nodes.items()):
        parent = node.get("parent")
        if parent is None:
            continue
        children.setdefault(int(parent), {})[int(node.get("child_index", 0))] = node_id
        if int(node.get("completion_tokens") or 0) > 0:
            by_depth.setdefault(int(node["depth"]), []).append(node_id)
    key_of: dict[int, tuple[int, ...]] = {0: ()}
    for node_id, node in sorted(nodes.items(), key=lambda kv: int(kv[1].get("depth", 0))):
        parent = node.get("parent")
        if parent is not None and int(parent) in key_of:
            key_of[node_id] = (*key_of[int(parent)], int(node.get("child_index", 0)))
    return _Tree(nodes, children, by_depth, key_of)


@dataclass
class RecordedWorkload:
    """Recorded trees as a step source for `SimBackend` (see the module docstring).

    Attributes:
        rows: the recorded problems (`record-trees` lines), in file order.
        seed: the search seed of the replay (the bench `--seed`), for path recovery.
        prompt_tokens: tokens of the chat template + question (mean over the recording).
        max_depth: the depth cap the recorded searches ran with.
    """

    rows: list[dict[str, Any]]
    seed: int = 0
    prompt_tokens: int = 0
    max_depth: int = 20
    _trees: dict[str, _Tree] = field(default_factory=dict, repr=False)
    _child_index: dict[tuple[str, int], dict[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.rows:
            raise ConfigError("the recording holds no problems; record some with spex record-trees")
        self._trees = {str(r["id"]): _index(r) for r in self.rows}
        if not self.prompt_tokens:
            firsts = [
                int(n.get("prompt_tokens") or 0)
                for r in self.rows
                for n in r.get("nodes", [])
                if n.get("depth") == 1 and n.get("prompt_tokens")
            ]
            self.prompt_tokens = round(statistics.fmean(firsts)) if firsts else 1

    def tree(self, problem_id: str) -> _Tree:
        """The indexed tree of a recorded problem."""
        found = self._trees.get(problem_id)
        if found is None:
            raise ConfigError(f"problem {problem_id!r} is not in the recording")
        return found

    def _recorded_child(self, problem_id: str, parent: int, seed: int) -> int | None:
        """The recorded child of `parent` whose path's seed is `seed`, if any."""
        tree = self.tree(problem_id)
        cache_key = (problem_id, parent)
        table = self._child_index.get(cache_key)
        if table is None:
            base = derive_seed(self.seed, (hash_text(problem_id),))
            parent_key = tree.key_of.get(parent, ())
            table = {derive_seed(base, (*parent_key, j)): j for j in range(_MAX_CHILD_INDEX)}
            self._child_index[cache_key] = table
        j = table.get(seed)
        if j is None:
            return None
        return tree.children.get(parent, {}).get(j)

    def child(self, problem_id: str, parent: SimStep | None, seed: int) -> SimStep:
        """The step below `parent` for `seed`: recorded when it exists, else drawn."""
        tree = self.tree(problem_id)
        depth = 1 if parent is None else parent.depth + 1
        node_id: int | None = None
        real = parent is None or parent.ok
        if real:
            node_id = self._recorded_child(problem_id, 0 if parent is None else parent.salt, seed)
        recorded = node_id is not None
        if node_id is None:
            levels = [d for d in tree.by_depth if d <= depth] or list(tree.by_depth)
            pool = tree.by_depth[max(levels)]
            node_id = pool[stable_hash("replay", problem_id, seed, depth) % len(pool)]
        node = tree.nodes[node_id]
        answer = node.get("answer")
        if answer is None and node.get("status") == "terminal" and depth < self.max_depth:
            answer = NO_ANSWER  # ended the text early; at the cap the search ends it itself
        return SimStep(
            depth=depth,
            ok=recorded,
            tokens=max(1, int(node.get("completion_tokens") or 1)),
            target_depth=depth,
            salt=node_id,
            answer=None if answer is None else str(answer),
        )

    def continuation(
        self, problem_id: str, parent: SimStep | None, seed: int, max_steps: int = 64
    ) -> Iterable[SimStep]:
        """Steps from below `parent` to an answer (one request without stop strings)."""
        node = parent
        for j in range(max_steps):
            step_seed = seed if j == 0 else stable_hash(seed, j) & 0x7FFF_FFFF
            node = self.child(problem_id, node, step_seed)
            yield node
            if node.terminal or node.depth >= self.max_depth:
                return

    def reward(self, problem_id: str, step: SimStep) -> float:
        """The recorded reward of the node a step stands for (0.0 when unscored)."""
        value = self.tree(problem_id).nodes[step.salt].get("reward")
        return float(value) if value is not None else 0.0


class RecordedTask(SimTask):
    """The recorded problems as a task: ids and gold answers from the recording."""

    name = "replay"

    def __init__(self, workload: RecordedWorkload):
        """A task over the recorded problems."""
        super().__init__(SyntheticWorkload(), max_depth=workload.max_depth)
        self.recorded = workload
        tasks = list(_recorded_tasks(workload.rows).values())
        self._grouping = tasks[0] if len(tasks) == 1 else None

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Recorded problems `offset` .. `offset + limit` (all when `limit` is None)."""
        rows = self.recorded.rows[offset:]
        if limit is not None:
            if limit > len(rows):
                raise ConfigError(
                    f"--queries {limit} exceeds the {len(rows)} recorded problems; lower it"
                )
            rows = rows[:limit]
        return [self._problem(r) for r in rows]

    def extract_answer(self, text: str) -> str | None:
        """The recorded answer; None for a leaf that ended without one (it never votes,
        as on the real engine)."""
        answer = super().extract_answer(text)
        return None if answer == NO_ANSWER else answer

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two answers vote together, as the recorded task grouped them (MATH-500:
        `(3, 0)` = `(3,0)`), so the replayed vote forms the recorded classes; exact match
        when the recording mixes tasks or names none this library knows. (MATH-500's
        `math_equal` gives up after a 3 s deadline, which short answers never reach;
        a replay of huge answers on a loaded machine could group them differently.)"""
        if a.strip() == b.strip():
            return True
        return self._grouping is not None and self._grouping.equivalent(a, b)

    def _problem(self, row: Mapping[str, Any]) -> Problem:
        correct = sorted(
            {str(n["answer"]) for n in row.get("nodes", []) if n.get("correct") and n["answer"]}
        )
        pid = str(row["id"])
        return Problem(
            id=pid,
            task=self.name,
            question=f"[sim problem={pid}] {row.get('question', '')}",
            gold=str(row.get("gold", "")),
            meta={"correct_answers": correct},
        )

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """The gold answer, or an answer the recording graded correct."""
        if answer is None:
            return False
        return answer.strip() == problem.gold.strip() or answer.strip() in problem.meta.get(
            "correct_answers", []
        )


class RecordedPRM(SimPRM):
    """Scores replayed steps with their recorded rewards, timed on the PRM's engine."""

    name = "replay-prm"

    def __init__(self, engine: SimEngine, workload: RecordedWorkload) -> None:
        """A PRM for `workload` on `engine`."""
        super().__init__(engine, workload)  # type: ignore[arg-type]
        self.recorded = workload

    def value(self, request: ScoreRequest) -> float:
        """The recorded reward of the path's newest step."""
        tags = [t for step in request.steps for t in parse_steps(step)]
        if not tags:
            return 0.0
        return self.recorded.reward(problem_key(request.question), tags[-1])


def _recorded_tasks(rows: Sequence[Mapping[str, Any]]) -> dict[str, Task | None]:
    """The task each recorded `task` name stands for (None: not a task of this library)."""
    from spex_graph.tasks import get_task

    found: dict[str, Task | None] = {}
    for name in sorted({str(r.get("task", "")) for r in rows}):
        try:
            found[name] = get_task(name)
        except ConfigError:
            found[name] = None
    return found


def _max_depth(rows: Sequence[Mapping[str, Any]]) -> int:
    caps = [20 if t is None else t.max_depth for t in _recorded_tasks(rows).values()]
    deepest = max((int(n.get("depth", 0)) for r in rows for n in r.get("nodes", [])), default=1)
    return max([deepest, *caps])


def load_recorded_workload(path: str | Path, seed: int = 0) -> RecordedWorkload:
    """Read a `record-trees` JSONL (plain or .gz) as a replay workload.

    Raises:
        ConfigError: the file is missing or holds no problems.
    """
    from spex_graph.bench.record_trees import read_recorded_trees

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no recording at {p}; record one with spex record-trees --out {p}")
    rows = read_recorded_trees(p)
    return RecordedWorkload(rows, seed=seed, max_depth=_max_depth(rows))
