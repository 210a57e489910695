"""Exact mode: SPEX changes when work happens, never what the search decides.

Baseline and SPEX run on the same seeds over hundreds of random scripted
trees (random depth, branching outcomes, rewards and per-request latencies, so
speculation hits, misses and gets cancelled in varied interleavings), under a
virtual clock. The selected tree and the answer must be identical.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import pytest

from spex_graph import SearchContext, SearchTree, build_search_graph
from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.policies import SpexConfig
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest
from spex_graph.sim.clock import run_virtual, virtual_now


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def world(tree_seed: int, skew: float = 0.0) -> tuple[ScriptedBackend, RandomReward]:
    """A random reasoning world: what each node says, how long it takes, what it scores.

    With `skew` > 0, a finished path gives the first answer with that probability
    (a skewed tree, as early termination expects) and a random one otherwise."""
    rng = random.Random(tree_seed)
    p_end = rng.uniform(0.1, 0.5)
    answers = [str(rng.randint(1, 9)) for _ in range(rng.randint(1, 4))]

    def script(request: GenerationRequest, seed: int) -> str:
        depth = request.assistant_prefix.count("\n\n")
        u = _unit(tree_seed, seed, "end")
        if depth >= 1 and u < p_end:
            answer = answers[int(_unit(tree_seed, seed, "ans") * len(answers))]
            if _unit(tree_seed, seed, "skew") < skew:
                answer = answers[0]
            return f"So the answer is \\boxed{{{answer}}}."
        # the engine stops at the step delimiter; what follows it is never returned
        return f"Step {depth + 1}: note {int(_unit(tree_seed, seed) * 1000)}.\n\nStep {depth + 2}:"

    def latency(request: GenerationRequest) -> float:
        return 0.2 + 2.0 * _unit(tree_seed, request.seeds[0], "lat")

    backend = ScriptedBackend(
        script=script, latency=latency, max_concurrency=8, enforce_concurrency=True
    )
    return backend, RandomReward(tree_seed)


@dataclass
class RandomReward:
    """A deterministic pseudo-random reward with a pseudo-random latency."""

    tree_seed: int
    name: str = "random-reward"
    capabilities: RewardCapabilities = RewardCapabilities()

    async def score(self, request: ScoreRequest) -> float:
        import asyncio

        await asyncio.sleep(0.05 + 0.5 * _unit(self.tree_seed, request.steps, "rlat"))
        # coarse values make ties (and tie-breaking) common
        return round(_unit(self.tree_seed, request.steps), 1)

    async def cancel(self, request_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


ALGORITHMS = {
    "rebase": lambda rng: {"width": rng.randint(1, 8)},
    "beam": lambda rng: {"width": rng.randint(1, 4), "algorithm_options": {"expansion": 2}},
    "mcts": lambda rng: {
        "width": rng.randint(1, 3),
        "algorithm_options": {"rollouts": rng.randint(2, 6)},
    },
}


def run_pair(algorithm: str, tree_seed: int) -> tuple[list[object], list[object], dict[str, float]]:
    rng = random.Random(tree_seed * 7919)
    options = ALGORITHMS[algorithm](rng)
    spex = SpexConfig(budget=rng.random() < 0.5, lookahead_layers=rng.randint(1, 3))

    async def one(config: SpexConfig) -> tuple[list[object], str | None, float, float]:
        backend, reward = world(tree_seed)
        ctx = SearchContext.create(
            backend,
            reward,
            task="gsm8k",
            algorithm=algorithm,
            max_depth=5,
            seed=tree_seed,
            spex=config,
            clock=virtual_now,
            **options,
        )
        out = await build_search_graph().ainvoke({"question": f"t{tree_seed}"}, context=ctx)
        tree = SearchTree.model_validate(out["tree"])
        return (
            tree.decisions(),
            out["result"]["answer"],
            out["result"]["latency_s"],
            out["result"]["speculation_hit_rate"],
        )

    base = run_virtual(one(SpexConfig.baseline()))
    fast = run_virtual(one(spex))
    return (
        [base[0], base[1]],
        [fast[0], fast[1]],
        {"base": base[2], "spex": fast[2], "hits": fast[3]},
    )


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_spex_selects_the_same_tree_and_answer_as_the_baseline(algorithm: str) -> None:
    faster = hits = 0
    trees = 200
    for tree_seed in range(trees):
        base, fast, timing = run_pair(algorithm, tree_seed)
        assert fast == base, f"{algorithm} tree {tree_seed}: SPEX changed the search"
        faster += timing["spex"] < timing["base"] - 1e-9
        hits += timing["hits"] > 0
    # speculation is really exercised, and usually pays, on these trees
    assert hits > trees // 4
    assert faster > trees // 4


def test_non_exact_mode_lets_unused_speculative_leaves_vote() -> None:
    async def one(exact: bool) -> dict:  # type: ignore[type-arg]
        backend, reward = world(5)
        ctx = SearchContext.create(
            backend,
            reward,
            task="gsm8k",
            algorithm="rebase",
            width=6,
            max_depth=5,
            spex=SpexConfig(exact=exact, budget=False),
            clock=virtual_now,
        )
        return await build_search_graph().ainvoke({"question": "t5"}, context=ctx)

    exact, loose = run_virtual(one(True)), run_virtual(one(False))
    exact_tree = SearchTree.model_validate(exact["tree"])
    loose_tree = SearchTree.model_validate(loose["tree"])
    extra = [n for n in loose_tree.nodes if n.speculative and n.id >= len(exact_tree.nodes)]
    assert not any(n.speculative and n.status == "terminal" and n.id >= len(exact_tree.nodes)
                   for n in exact_tree.nodes)  # fmt: skip
    assert extra, "some unused speculative work should have been attached"
    voters = sum(loose["result"]["votes"].values()) if loose["result"]["votes"] else 0
    assert voters >= sum(exact["result"]["votes"].values())
