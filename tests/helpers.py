"""Shared test doubles: a scripted reward, a context factory on the fake backend, and
a run of simulated queries that keeps their sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spex_graph.backends.fake import ScriptedBackend, toy_math_script
from spex_graph.context import SearchContext
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest
from spex_graph.runtime.dispatcher import QuerySession
from spex_graph.sim import run_queries, run_virtual, sim_context


@dataclass
class AnswerReward:
    """Rewards steps that lead to `good` highly, other boxed answers lowly."""

    good: str = "42"
    name: str = "answer-reward"
    capabilities: RewardCapabilities = RewardCapabilities()
    calls: list[ScoreRequest] = field(default_factory=list)

    async def score(self, request: ScoreRequest) -> float:
        self.calls.append(request)
        last = request.steps[-1]
        if "\\boxed" in last:
            return 0.95 if f"\\boxed{{{self.good}}}" in last else 0.2
        return 0.5 + 0.01 * (len(last) % 7)

    async def cancel(self, request_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def fake_context(
    algorithm: str = "rebase",
    width: int = 4,
    backend: ScriptedBackend | None = None,
    **options: Any,
) -> SearchContext:
    """A SearchContext over the scripted backend and AnswerReward on the gsm8k task."""
    backend = backend or ScriptedBackend(script=toy_math_script())
    return SearchContext.create(
        backend, AnswerReward(), task="gsm8k", algorithm=algorithm, width=width, **options
    )


def run_sim_queries(
    algorithm: str, queries: int, *, concurrency: int = 1, **sim_options: Any
) -> tuple[list[dict[str, Any]], list[QuerySession]]:
    """Search the first `queries` problems on a simulated engine (`sim_context` with
    `sim_options`) on the virtual clock; returns the results and every closed session
    (its request records)."""
    sessions: list[QuerySession] = []

    async def main() -> list[dict[str, Any]]:
        ctx, _ = sim_context(algorithm, **sim_options)
        ctx.dispatcher.on_close.append(sessions.append)
        return await run_queries(ctx, ctx.task.load(queries), concurrency=concurrency)

    return run_virtual(main()), sessions
