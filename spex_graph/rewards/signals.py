"""Rewards computed on the CPU from the path itself: verifiers and policy confidence.

These need no reward engine, so they work with the embedded CPU model where
small models' yes/no self-evaluation is useless (P(yes) sticks near 0 or 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spex_graph.rewards.base import RewardCapabilities, ScoreRequest
from spex_graph.rewards.verifiers import check_arithmetic, game24_path_valid


def confidence(logprobs: tuple[float, ...]) -> float:
    """Geometric-mean token probability of a step: exp(mean logprob), in [0, 1]."""
    if not logprobs:
        return 0.5
    mean = sum(logprobs) / len(logprobs)
    return float(math.exp(max(mean, -50.0)))


@dataclass
class _CpuReward:
    """Shared no-op plumbing of rewards that run on the CPU, in the event loop."""

    async def cancel(self, request_id: str) -> None:
        """Nothing runs on an engine, so nothing to abort."""

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class Game24Verifier(_CpuReward):
    """Exact Game of 24 reward: 1.0 while every step is valid arithmetic on the
    available numbers and the numbers left can still make 24; else 0.0.

    The puzzle's numbers come from `ScoreRequest.gold_hint`.
    """

    name: str = "game24-verifier"
    capabilities: RewardCapabilities = RewardCapabilities()

    async def score(self, request: ScoreRequest) -> float:
        """1.0 if the path so far can still (or does) reach 24, else 0.0."""
        return (
            1.0
            if game24_path_valid(request.gold_hint, list(request.steps), require_reachable=True)
            else 0.0
        )


@dataclass
class ArithmeticConfidenceReward(_CpuReward):
    """GSM8K step reward: the policy's confidence, gated by an arithmetic check.

    score = confidence(step) when the step's equations check out (boosted
    towards 1 by `verified_bonus` when it has at least one), and
    `wrong_penalty` x confidence when an equation is wrong.
    """

    name: str = "arithmetic-confidence"
    capabilities: RewardCapabilities = RewardCapabilities(needs_policy_logprobs=True)
    verified_bonus: float = 0.5
    wrong_penalty: float = 0.1

    async def score(self, request: ScoreRequest) -> float:
        """Confidence of the last step, adjusted by its arithmetic check."""
        conf = confidence(request.step_logprobs)
        check = check_arithmetic(request.steps[-1] if request.steps else "")
        if check.wrong > 0:
            return conf * self.wrong_penalty
        if check.checked > 0:
            return conf + (1.0 - conf) * self.verified_bonus
        return conf


@dataclass
class ConfidenceReward(_CpuReward):
    """The policy's own confidence in the step (geometric-mean token probability)."""

    name: str = "confidence"
    capabilities: RewardCapabilities = RewardCapabilities(needs_policy_logprobs=True)

    async def score(self, request: ScoreRequest) -> float:
        """exp(mean token logprob) of the last step."""
        return confidence(request.step_logprobs)
