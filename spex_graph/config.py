"""Search configuration: one validated record for everything a query needs to know."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spex_graph.errors import ConfigError
from spex_graph.prompts import CHAT_TEMPLATES

ALGORITHMS: tuple[str, ...] = ("rebase", "beam", "ets", "bestfirst", "mcts", "bon")

MAX_WIDTH = 1024
"""Largest search width accepted (a typo like 10**6 would otherwise grow to gigabytes)."""
MAX_DEPTH = 1000
"""Largest depth cap accepted."""
MAX_TOKENS = 1_000_000
"""Largest per-step or per-solution token cap accepted."""


class SearchConfig(BaseModel):
    """How to search. Every field has a default; invalid values raise ConfigError.

    Attributes:
        task: problem set / prompt format ("gsm8k", "math500", "game24").
        algorithm: search algorithm name (see ALGORITHMS).
        width: the algorithm's width (REBASE leaves, beams, samples, ToT breadth,
            MCTS children per expansion); None = the algorithm's default.
        algorithm_options: extra keyword arguments for the algorithm
            (e.g. {"temperature": 0.2} for REBASE, {"rollouts": 10} for MCTS).
        max_depth: cap on reasoning steps; None = the task's default.
        step_max_tokens: cap on tokens per step.
        full_max_tokens: cap on tokens of a whole solution (best-of-N, rollouts).
        temperature, top_p: policy sampling parameters.
        seed: base seed; each node's seed derives from it, the question and the node path.
        chat_template: how chat messages become the engine's text prefix.
        request_timeout_s: a backend request taking longer fails the query.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = "gsm8k"
    algorithm: str = "rebase"
    width: int | None = None
    algorithm_options: dict[str, Any] = Field(default_factory=dict)
    max_depth: int | None = None
    step_max_tokens: int = 256
    full_max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    chat_template: str = "chatml"
    request_timeout_s: float = 600.0

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, v: str) -> str:
        if v not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {v!r}; choose one of {', '.join(ALGORITHMS)}")
        return v

    @field_validator("chat_template")
    @classmethod
    def _known_template(cls, v: str) -> str:
        if v not in CHAT_TEMPLATES:
            raise ValueError(f"unknown chat template {v!r}; choose one of {CHAT_TEMPLATES}")
        return v

    @field_validator("width")
    @classmethod
    def _width(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_WIDTH:
            raise ValueError(f"must be between 1 and {MAX_WIDTH}")
        return v

    @field_validator("max_depth")
    @classmethod
    def _depth(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_DEPTH:
            raise ValueError(f"must be between 1 and {MAX_DEPTH}")
        return v

    @field_validator("step_max_tokens", "full_max_tokens")
    @classmethod
    def _positive(cls, v: int) -> int:
        if not 1 <= v <= MAX_TOKENS:
            raise ValueError(f"must be between 1 and {MAX_TOKENS}")
        return v

    @field_validator("request_timeout_s")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError("must be a positive number of seconds")
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if not 0.0 <= v <= 5.0:
            raise ValueError("must be between 0 and 5")
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError("must be in (0, 1]")
        return v

    @classmethod
    def make(cls, **values: Any) -> SearchConfig:
        """Build a config, turning validation errors into one-line ConfigErrors."""
        from pydantic import ValidationError

        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"invalid search option {where}: {msg}") from None
