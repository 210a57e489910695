"""SPEX: speculative expansion, the cross-query budget controller, early termination."""

from spex_graph.policies.budget import BudgetController, Claim
from spex_graph.policies.config import SpexConfig
from spex_graph.policies.early_stop import StopDecision, answer_classes, safe_stop, should_stop

__all__ = [
    "BudgetController",
    "Claim",
    "SpexConfig",
    "StopDecision",
    "answer_classes",
    "safe_stop",
    "should_stop",
]
