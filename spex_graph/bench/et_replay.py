"""Replay early-termination rules offline on recorded search trees.

`spex record-trees` writes whole searches (every node, its tokens, reward and
correctness). A layer-by-layer search (REBASE, ETS) checks early termination
after each layer, and the tree it has then is the recording's nodes up to that
depth, so every rule can be replayed exactly, without the engine:

* none: the full search (must reproduce the recorded answer);
* paper: SPEX's heuristic (`early_stop.should_stop`, the SpexConfig constants);
* safe: the proved rule (`early_stop.safe_stop` with `leaf_bound.max_new_leaves`);
* pruning: trailing-branch pruning alone (`early_stop.prune_trailing`); a
  pruned branch's recorded subtree is dropped. A live search would hand the
  freed width to the surviving branches, which a recording cannot show, so
  its tokens saved are an upper bound and its answers a close approximation.

Per rule: how many queries it stopped early, the fraction whose answer equals
the full search's, accuracy against gold, and the generated tokens it saved.

Reward quality sweep: the recorded reward r of every node is mixed with a
gold label y (1 when some finished leaf below or at the node is correct, else
0) as (1 - q) r + q y, at rates q; q = 0 is the recorded reward, q = 1 a
perfect process reward. The tree shape stays the recorded one (grown under
the recorded reward); the votes, and every rule's decisions, use the mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spex_graph.algorithms import SearchState, make_algorithm
from spex_graph.bench.record_trees import read_recorded_trees
from spex_graph.errors import ConfigError
from spex_graph.policies.config import SpexConfig
from spex_graph.policies.early_stop import paper_classes, prune_trailing, safe_stop, should_stop
from spex_graph.policies.leaf_bound import max_leaf_weight, max_new_leaves
from spex_graph.tasks import get_task
from spex_graph.tree import NodeStatus, SearchNode, SearchTree
from spex_graph.voting import Aggregation, AnswerTally, TreeTally, VoteMethod

__all__ = [
    "RULES",
    "RecordedSearch",
    "ReplayOutcome",
    "ReplayReport",
    "ReplaySettings",
    "RuleSummary",
    "format_replay",
    "load_recording",
    "replay",
    "replay_files",
    "replay_one",
]

RULES: tuple[str, ...] = ("none", "paper", "safe", "pruning")
LAYERED = ("rebase", "ets")
"""Algorithms whose node ids run layer by layer, so a depth is a prefix of the tree."""


@dataclass(frozen=True)
class ReplaySettings:
    """The rules' constants (defaults: SpexConfig's, and an assumed pruning margin).

    Attributes:
        alpha, threshold: the paper rule's constants for BFS-style searches.
        prune_margin, prune_min_depth: pruning drops live branches whose min path
            reward trails the best by more than the margin, at this depth or deeper.
        mixes: reward-quality rates q to replay at (see the module docstring).
    """

    alpha: float = SpexConfig().et_alpha_bfs
    threshold: float = SpexConfig().et_threshold_bfs
    prune_margin: float = 0.3
    prune_min_depth: int = SpexConfig().prune_min_depth
    mixes: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class RecordedSearch:
    """One recorded problem, rebuilt as a search tree.

    Attributes:
        problem_id, task, gold: the problem.
        algorithm, width: the search that was recorded.
        answer: the answer the recorded search returned.
        tree: every node, with the recorded rewards and statuses.
        correct: per node id, whether its answer is correct (None: no answer).
        label: per node id, 1.0 when some finished leaf at or below it is correct.
    """

    problem_id: str
    task: str
    gold: str
    algorithm: str
    width: int
    answer: str | None
    tree: SearchTree
    correct: dict[int, bool | None]
    label: dict[int, float]


def _rebuild(row: dict[str, Any], source: str) -> RecordedSearch:
    nodes = sorted(row["nodes"], key=lambda n: n["id"])
    if [n["id"] for n in nodes] != list(range(len(nodes))) or nodes[0]["parent"] is not None:
        raise ConfigError(f"{source}: problem {row.get('id')} has a broken node table")
    depths = [n.get("depth", 0) for n in nodes]
    if depths != sorted(depths):
        raise ConfigError(
            f"{source}: problem {row.get('id')}: nodes are not in layer order; "
            f"et-replay needs a layer-by-layer search ({', '.join(LAYERED)})"
        )
    tree_nodes = [
        SearchNode.model_construct(
            id=n["id"],
            parent=n["parent"],
            child_index=n.get("child_index", 0),
            depth=n.get("depth", 0),
            text=n.get("text", ""),
            completion_tokens=int(n.get("completion_tokens") or 0),
            reward=n.get("reward"),
            status=NodeStatus(n.get("status") or "active"),
            answer=n.get("answer"),
        )
        for n in nodes
    ]
    children: dict[int, list[int]] = {}
    for n in tree_nodes[1:]:
        children.setdefault(int(n.parent), []).append(n.id)  # type: ignore[arg-type]
    correct = {int(n["id"]): n.get("correct") for n in nodes}
    label = dict.fromkeys(correct, 0.0)
    for n in reversed(tree_nodes):  # children come after their parent
        if n.status == NodeStatus.TERMINAL and correct[n.id]:
            label[n.id] = 1.0
        if n.parent is not None and label[n.id]:
            label[n.parent] = 1.0
    return RecordedSearch(
        problem_id=str(row.get("id")),
        task=str(row.get("task")),
        gold=str(row.get("gold")),
        algorithm=str(row.get("algorithm")),
        width=int(row.get("width") or 0),
        answer=row.get("answer"),
        tree=SearchTree.model_construct(nodes=tree_nodes, children_of=children),
        correct=correct,
        label=label,
    )


def load_recording(path: str | Path) -> list[RecordedSearch]:
    """Read a `spex record-trees` file (JSONL, optionally gzip) of a layered search."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no recording at {path}; record one with `spex record-trees`")
    try:
        rows = read_recorded_trees(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a spex record-trees file ({exc})") from None
    out = []
    for row in rows:
        if not isinstance(row, dict) or "nodes" not in row:
            raise ConfigError(f"{path}: not a spex record-trees file (a line has no nodes)")
        if row.get("algorithm") not in LAYERED:
            raise ConfigError(
                f"{path}: problem {row.get('id')} was searched with {row.get('algorithm')!r}; "
                f"et-replay replays {', '.join(LAYERED)} recordings"
            )
        out.append(_rebuild(row, str(path)))
    if not out:
        raise ConfigError(f"{path}: the recording holds no problems")
    return out


def _equivalence(task: str) -> Callable[[str, str], bool]:
    """The answer equivalence of a recorded task (the simulator's "sim" included)."""
    if task == "sim":
        from spex_graph.sim.workload import SimTask

        return SimTask().equivalent
    return get_task(task).equivalent


def _mixed(rec: RecordedSearch, q: float) -> SearchTree:
    """The tree with every reward mixed with its gold label at rate q."""
    tree = rec.tree.clone()
    for n in tree.nodes[1:]:
        r = n.reward if n.reward is not None else 0.0
        n.reward = (1.0 - q) * r + q * rec.label[n.id]
    return tree


@dataclass(frozen=True)
class ReplayOutcome:
    """One rule on one recorded search.

    Attributes:
        answer: the answer the search returns under the rule.
        correct: whether it is correct.
        tokens: generated tokens the search spends under the rule.
        fired: the rule stopped the search early (pruning: pruned a branch).
    """

    answer: str | None
    correct: bool
    tokens: int
    fired: bool


def _winner(tally: AnswerTally, method: VoteMethod, aggregation: Aggregation) -> int | None:
    """The first leaf of the winning class (its answer is the class's answer)."""
    if not tally.classes:
        return None
    return tally.ranked(method, aggregation)[0].leaf_ids[0]


class _Replayer:
    """Replays the rules on one recorded search at one reward mix."""

    def __init__(self, rec: RecordedSearch, tree: SearchTree, settings: ReplaySettings) -> None:
        self.rec, self.tree, self.settings = rec, tree, settings
        self.algorithm = make_algorithm(rec.algorithm, rec.width)
        self.method: VoteMethod = self.algorithm.vote
        self.aggregation: Aggregation = self.algorithm.aggregation
        self.equivalent = _equivalence(rec.task)
        depths = [n.depth for n in tree.nodes]
        # ends[d]: the nodes the search had after layer d (a prefix, ids run by layer)
        self.ends = [sum(1 for x in depths if x <= d) for d in range(max(depths) + 1)]
        self.cum_tokens = [0]
        for n in tree.nodes:
            self.cum_tokens.append(self.cum_tokens[-1] + n.completion_tokens)

    def outcome(self, leaf: int | None, tokens: int, fired: bool) -> ReplayOutcome:
        """Answer, correctness and cost of stopping with `leaf`'s class as the winner."""
        if leaf is None:
            return ReplayOutcome(None, False, tokens, fired)
        node = self.tree.node(leaf)
        return ReplayOutcome(node.answer, bool(self.rec.correct[leaf]), tokens, fired)

    def stop_rule(self, rule: str) -> ReplayOutcome:
        """Replay the "none", "paper" or "safe" rule: check after every layer."""
        tracker = TreeTally(self.equivalent, ("min", self.aggregation))
        layers = len(self.ends) - 1
        for depth in range(1, layers + 1):
            end = self.ends[depth]
            view = SearchTree.model_construct(nodes=self.tree.nodes[:end], children_of={})
            tally = tracker.update(view)
            if rule == "none" or depth == layers:  # the last layer ends the search anyway
                continue
            finished = sum(1 for n in view.nodes if n.status == NodeStatus.TERMINAL)
            if rule == "paper":
                stop = should_stop(
                    paper_classes(tally),
                    remaining=max(0, self.rec.width - finished),
                    finished=len(tally),
                    min_finished=self.rec.width / 4,
                    alpha=self.settings.alpha,
                    threshold=self.settings.threshold,
                    min_leading=2,
                ).stop
            else:
                # the live state's frontier: the layer's nodes that got children
                frontier = [
                    n.id
                    for n in view.nodes[self.ends[depth - 1] :]
                    if n.status != NodeStatus.TERMINAL and self.tree.children_of.get(n.id)
                ]
                state = SearchState(frontier=frontier)
                stop = safe_stop(
                    tally,
                    method=self.method,
                    aggregation=self.aggregation,
                    new_leaves=max_new_leaves(self.algorithm, view, state),
                    rewards_in_unit_range=tracker.rewards_in_unit_range,
                    w_max=max_leaf_weight(self.algorithm, view, state, self.aggregation),
                ).stop
            if stop:
                leaf = _winner(tally, self.method, self.aggregation)
                return self.outcome(leaf, self.cum_tokens[end], True)
        leaf = _winner(tracker.tally, self.method, self.aggregation)
        return self.outcome(leaf, self.cum_tokens[-1], False)

    def pruning(self) -> ReplayOutcome:
        """Replay trailing-branch pruning: drop the recorded subtrees of pruned branches."""
        tree, removed = self.tree, set[int]()
        for depth in range(1, len(self.ends) - 1):
            frontier = [
                n.id
                for n in tree.nodes[self.ends[depth - 1] : self.ends[depth]]
                if n.status != NodeStatus.TERMINAL
                and tree.children_of.get(n.id)
                and n.id not in removed
            ]
            doomed = prune_trailing(
                tree, frontier, self.settings.prune_margin, self.settings.prune_min_depth
            )
            stack = [c for d in doomed for c in tree.children_of.get(d, [])]
            while stack:
                node = stack.pop()
                removed.add(node)
                stack.extend(tree.children_of.get(node, []))
        tally = AnswerTally(self.equivalent, (self.aggregation,))
        for n in tree.nodes:
            if n.id not in removed and n.status == NodeStatus.TERMINAL and n.answer is not None:
                tally.add(n.id, n.answer, tree.path_rewards(n.id))
        tokens = sum(n.completion_tokens for n in tree.nodes if n.id not in removed)
        return self.outcome(_winner(tally, self.method, self.aggregation), tokens, bool(removed))


def replay_one(
    rec: RecordedSearch, rule: str, settings: ReplaySettings, mix: float = 0.0
) -> ReplayOutcome:
    """Replay one rule (one of RULES) on one recorded search at reward mix `mix`."""
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    replayer = _Replayer(rec, _mixed(rec, mix), settings)
    return replayer.pruning() if rule == "pruning" else replayer.stop_rule(rule)


@dataclass(frozen=True)
class RuleSummary:
    """One rule at one reward mix, over a recording's problems.

    Attributes:
        rule: none, paper, safe or pruning.
        mix: the reward-quality rate q (0: the recorded reward).
        problems: problems replayed.
        fired: problems the rule stopped early (pruning: pruned something).
        agreement: fraction whose answer equals the full search's at this mix.
        accuracy: fraction answered correctly.
        tokens_saved: fraction of the full search's generated tokens not spent.
    """

    rule: str
    mix: float
    problems: int
    fired: int
    agreement: float
    accuracy: float
    tokens_saved: float


@dataclass(frozen=True)
class ReplayReport:
    """Everything `replay` measured on one set of recordings.

    Attributes:
        source: the recording files, comma-separated.
        problems: problems replayed.
        recorded_mismatch: problems whose replayed full search (q = 0) did not
            reproduce the recorded answer (0 means the replay is faithful).
        rows: one summary per (mix, rule).
    """

    source: str
    problems: int
    recorded_mismatch: int
    rows: list[RuleSummary]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def replay(
    recordings: Sequence[RecordedSearch], settings: ReplaySettings, source: str = ""
) -> ReplayReport:
    """Replay every rule at every reward mix on `recordings`."""
    rows: list[RuleSummary] = []
    mismatch = 0
    for q in settings.mixes:
        outcomes: dict[str, list[ReplayOutcome]] = {rule: [] for rule in RULES}
        for rec in recordings:
            for rule in RULES:
                outcomes[rule].append(replay_one(rec, rule, settings, q))
            if q == 0.0 and outcomes["none"][-1].answer != rec.answer:
                mismatch += 1
        full = outcomes["none"]
        full_tokens = sum(o.tokens for o in full) or 1
        for rule in RULES:
            outs = outcomes[rule]
            n = max(len(outs), 1)
            rows.append(
                RuleSummary(
                    rule=rule,
                    mix=q,
                    problems=len(outs),
                    fired=sum(o.fired for o in outs),
                    agreement=sum(o.answer == f.answer for o, f in zip(outs, full, strict=True))
                    / n,
                    accuracy=sum(o.correct for o in outs) / n,
                    tokens_saved=1.0 - sum(o.tokens for o in outs) / full_tokens,
                )
            )
    return ReplayReport(source, len(recordings), mismatch, rows)


def format_replay(report: ReplayReport) -> str:
    """The report as a text table: one block per reward mix."""
    lines = [
        f"{report.source}: {report.problems} problems"
        + (
            f"  (warning: the replayed full search differs from the recorded answer on "
            f"{report.recorded_mismatch})"
            if report.recorded_mismatch
            else "  (replayed full search = recorded answer on every problem)"
        ),
        f"{'reward mix q':>12}  {'rule':<8} {'fired':>7} {'agree':>7} {'accuracy':>9} "
        f"{'tokens saved':>12}",
    ]
    for row in report.rows:
        lines.append(
            f"{row.mix:>12.2f}  {row.rule:<8} {row.fired:>3}/{row.problems:<3} "
            f"{row.agreement:>7.1%} {row.accuracy:>9.1%} {row.tokens_saved:>12.1%}"
        )
    lines.append(
        "pruning drops the recorded subtrees of pruned branches: its tokens saved are an "
        "upper bound (a live REBASE re-spends the freed width on the other branches)"
    )
    return "\n".join(lines)


def replay_files(paths: Iterable[str | Path], settings: ReplaySettings) -> list[ReplayReport]:
    """One report per recording file, plus one over all of them when there are several."""
    loaded = [(str(p), load_recording(p)) for p in paths]
    reports = [replay(recs, settings, source) for source, recs in loaded]
    if len(loaded) > 1:
        everything = [r for _, recs in loaded for r in recs]
        reports.append(replay(everything, settings, "all recordings"))
    return reports
