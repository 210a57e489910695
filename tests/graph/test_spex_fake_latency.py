"""The issue's reference scenario on the fake backend, on a virtual clock:
policy step 1.0 s, reward 0.3 s, 8 engine slots, REBASE width 8."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from spex_graph import SearchContext, SearchTree, build_search_graph
from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.policies import SpexConfig
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest
from spex_graph.sim.clock import run_virtual, virtual_now


def uneven_script(request: GenerationRequest, seed: int) -> str:
    """Paths end after 2 to 5 steps, most with the answer 42."""
    rng = random.Random(seed)
    depth = request.assistant_prefix.count("\n\n")
    if depth >= 1 and rng.random() < 0.4:
        return f"So the answer is \\boxed{{{42 if rng.random() < 0.8 else 41}}}."
    return f"Step {depth + 1}: combine {rng.randint(1, 9)} and {rng.randint(1, 9)}.\n\nmore"


@dataclass
class ConfidentReward:
    """0.3 s per score; steps 0.95, the answer 42 0.97, other answers 0.2."""

    name: str = "confident"
    capabilities: RewardCapabilities = RewardCapabilities()

    async def score(self, request: ScoreRequest) -> float:
        await asyncio.sleep(0.3)
        last = request.steps[-1]
        if "\\boxed" in last:
            return 0.97 if "\\boxed{42}" in last else 0.2
        return 0.95 - 0.01 * (len(last) % 5)

    async def cancel(self, request_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def search(spex: SpexConfig, questions: int = 4) -> list[dict]:  # type: ignore[type-arg]
    async def go() -> list[dict]:  # type: ignore[type-arg]
        backend = ScriptedBackend(
            script=uneven_script,
            latency=lambda r: 1.0,
            max_concurrency=8,
            enforce_concurrency=True,
        )
        ctx = SearchContext.create(
            backend,
            ConfidentReward(),
            task="gsm8k",
            algorithm="rebase",
            width=8,
            max_depth=6,
            spex=spex,
            clock=virtual_now,
        )
        graph = build_search_graph()
        outs = []
        for i in range(questions):  # one at a time: latency, not throughput
            outs.append(await graph.ainvoke({"question": f"q{i}"}, context=ctx))
        return outs

    return run_virtual(go())


def test_spex_is_faster_with_identical_answers_and_early_stop_saves_tokens() -> None:
    base = search(SpexConfig.baseline())
    spex = search(SpexConfig())
    et = search(SpexConfig.full())
    for b, s in zip(base, spex, strict=True):
        assert s["result"]["answer"] == b["result"]["answer"]
        assert (
            SearchTree.model_validate(s["tree"]).decisions()
            == SearchTree.model_validate(b["tree"]).decisions()
        )
    mean = lambda outs: sum(o["result"]["latency_s"] for o in outs) / len(outs)  # noqa: E731
    tokens = lambda outs: sum(  # noqa: E731
        o["result"]["tokens_primary"]
        + o["result"]["tokens_speculative_used"]
        + o["result"]["tokens_speculative_wasted"]
        for o in outs
    )
    assert mean(spex) < 0.9 * mean(base)
    assert tokens(et) < tokens(base)
    assert any(o["result"]["stop_reason"] == "early-stop" for o in et)
    assert [o["result"]["answer"] for o in et] == [o["result"]["answer"] for o in base]
