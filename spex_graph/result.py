"""What a search returns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SearchResult(BaseModel):
    """The outcome of one query.

    Attributes:
        query_id: the query's id (the LangGraph thread id when checkpointing).
        question: the problem statement.
        answer: the chosen final answer (None when no path reached one).
        correct: whether it matches the gold answer (None when no gold is known).
        chosen_path: the step texts of the best leaf of the winning answer.
        chosen_node: that leaf's node id.
        votes: total vote weight per answer.
        stop_reason: why the search ended.
        algorithm, width: what searched.
        nodes: nodes in the tree (root included).
        tokens_primary, tokens_speculative_used, tokens_speculative_wasted: generated tokens.
        speculation_hit_rate: used / submitted speculative requests.
        cancelled_requests: requests aborted on the engine.
        latency_s: wall (or virtual) time from first request to answer.
    """

    query_id: str
    question: str
    answer: str | None
    correct: bool | None = None
    chosen_path: list[str] = Field(default_factory=list)
    chosen_node: int | None = None
    votes: dict[str, float] = Field(default_factory=dict)
    stop_reason: str | None = None
    algorithm: str = ""
    width: int = 0
    nodes: int = 0
    tokens_primary: int = 0
    tokens_speculative_used: int = 0
    tokens_speculative_wasted: int = 0
    speculation_hit_rate: float = 0.0
    cancelled_requests: int = 0
    latency_s: float = 0.0
