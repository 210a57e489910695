"""Rewards: score reasoning steps.

RewardModel / ScoreRequest       the protocol
SGLangPRM                        a step-tag PRM served by stock SGLang
LogprobJudge                     an LLM judge scored from logprobs (any backend)
Game24Verifier                   exact Game of 24 verifier
ArithmeticConfidenceReward       GSM8K: arithmetic check x policy confidence
ConfidenceReward                 the policy's own token confidence
CallableReward                   any (async) function
"""

from spex_graph.rewards.base import RewardCapabilities, RewardModel, ScoreRequest
from spex_graph.rewards.callable import CallableReward
from spex_graph.rewards.judge import LogprobJudge
from spex_graph.rewards.prm import SGLangPRM
from spex_graph.rewards.signals import (
    ArithmeticConfidenceReward,
    ConfidenceReward,
    Game24Verifier,
)

__all__ = [
    "ArithmeticConfidenceReward",
    "CallableReward",
    "ConfidenceReward",
    "Game24Verifier",
    "LogprobJudge",
    "RewardCapabilities",
    "RewardModel",
    "SGLangPRM",
    "ScoreRequest",
]
