"""The graph's state schema: plain, JSON-friendly data that checkpoints cleanly."""

from __future__ import annotations

from typing import Any

# pydantic (JSON schemas for LangGraph Studio's input form) needs typing_extensions'
# TypedDict before Python 3.12.
from typing_extensions import TypedDict


class SearchInput(TypedDict, total=False):
    """What a caller passes in: a question, or a full problem record.

    Attributes:
        question: the problem statement.
        problem: a `Problem` as a dict (id, task, question, gold, meta); gives grading.
        query_id: optional id for traces; defaults to the thread id or a fresh one.
    """

    question: str
    problem: dict[str, Any]
    query_id: str


class SearchGraphState(SearchInput, total=False):
    """The full state between supersteps.

    Attributes:
        tree: the `SearchTree` as JSON-mode data.
        search: the algorithm's `SearchState` as JSON-mode data.
        orders: `ExpandOrder`s proposed by `select`, consumed by `expand`.
        new_ids: children made by `expand`, scored by `evaluate`.
        started_at: clock reading when the query started.
        result: the `SearchResult` as a dict, set by `aggregate`.
    """

    tree: dict[str, Any]
    search: dict[str, Any]
    orders: list[dict[str, Any]]
    new_ids: list[int]
    started_at: float
    result: dict[str, Any]


class SearchOutput(TypedDict, total=False):
    """What the graph returns: the result (plus the tree, for inspection)."""

    result: dict[str, Any]
    tree: dict[str, Any]
