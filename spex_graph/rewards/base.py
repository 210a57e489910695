"""The reward protocol: score the newest step of a reasoning path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RewardCapabilities:
    """What a reward model can do.

    Attributes:
        can_abort: `cancel(request_id)` stops the work on the engine.
        uses_engine: scoring costs engine time (a PRM or judge), not just CPU.
        needs_policy_logprobs: the reward reads the policy's token logprobs of the
            scored step, so the policy must be asked for them.
        can_promote: has `promote(request_id, priority)` (see `backends.base.Promotable`).
        reports_load: has `load()` (see `backends.base.LoadReporting`).
    """

    can_abort: bool = False
    uses_engine: bool = False
    needs_policy_logprobs: bool = False
    can_promote: bool = False
    reports_load: bool = False


@dataclass(frozen=True)
class ScoreRequest:
    """Score the last step of a path.

    Attributes:
        question: the problem statement.
        steps: every step of the path, root first; the last one is scored.
        request_id: unique id, for cancellation on the engine.
        task: task name ("math500", "gsm8k", "game24", ...), for task-aware rewards.
        gold_hint: task data a verifier may use that is not the answer
            (e.g. the Game of 24 numbers); never the gold answer itself.
        step_logprobs: token logprobs of the last step when the policy returned them.
        finish_reason: the policy's finish reason for the last step.
        priority: higher runs first where the engine supports priorities (the
            dispatcher raises primary requests above speculative ones).
    """

    question: str
    steps: tuple[str, ...]
    request_id: str
    task: str = ""
    gold_hint: str = ""
    step_logprobs: tuple[float, ...] = field(default=())
    finish_reason: str | None = None
    priority: int = 0


@runtime_checkable
class RewardModel(Protocol):
    """Something that scores reasoning steps (a PRM, an LLM judge, a verifier, a callable).

    `name` and `capabilities` are read-only.
    """

    @property
    def name(self) -> str:
        """Short name for messages and traces."""
        ...

    @property
    def capabilities(self) -> RewardCapabilities:
        """What this reward model can do."""
        ...

    async def score(self, request: ScoreRequest) -> float:
        """Reward of the last step, in [0, 1] (higher is better)."""
        ...

    async def cancel(self, request_id: str) -> None:
        """Abort a scoring request in flight; unknown ids are ignored."""
        ...

    async def aclose(self) -> None:
        """Release resources."""
        ...
