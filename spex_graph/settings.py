"""Context by name: what LangGraph Studio and LangGraph Platform runs pass as context.

A deployed graph cannot receive live backends; its runs carry plain JSON (the assistant's
and the run's ``context``), often nothing at all. `ContextSettings` is that JSON as a
record of names. Fields left empty fall back to ``SPEX_*`` environment variables (set in
``langgraph.json``'s ``env``), then to the library defaults, and the resolved settings are
built into one shared `SearchContext` per distinct value.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from spex_graph.errors import ConfigError

if TYPE_CHECKING:
    from spex_graph.context import SearchContext

__all__ = ["ContextSettings", "context_from_settings"]

#: Environment variable read for each field left empty.
ENV_VARS = {
    "backend": "SPEX_BACKEND",
    "backend_url": "SPEX_BACKEND_URL",
    "model": "SPEX_MODEL",
    "task": "SPEX_TASK",
    "algorithm": "SPEX_ALGORITHM",
    "width": "SPEX_WIDTH",
    "max_depth": "SPEX_MAX_DEPTH",
    "step_max_tokens": "SPEX_STEP_MAX_TOKENS",
}
_WHOLE_NUMBERS = ("width", "max_depth", "step_max_tokens")
_DEFAULTS: dict[str, Any] = {"backend": "embedded", "task": "gsm8k", "algorithm": "rebase"}


@dataclass(frozen=True)
class ContextSettings:
    """A search context by name; every field optional.

    Attributes:
        backend: embedded, sglang, openai or fake ($SPEX_BACKEND, default embedded).
        backend_url: server URL for sglang/openai ($SPEX_BACKEND_URL).
        model: embedded model ("0.5b", "1.5b") or served model name ($SPEX_MODEL).
        task: gsm8k, math500 or game24 ($SPEX_TASK, default gsm8k).
        algorithm: beam, rebase, ets, best_first, mcts, ... ($SPEX_ALGORITHM, default rebase).
        width: beam width / samples per round ($SPEX_WIDTH, default the algorithm's).
        max_depth: cap on reasoning steps ($SPEX_MAX_DEPTH, default the task's).
        step_max_tokens: cap on tokens per step ($SPEX_STEP_MAX_TOKENS, default 256).
    """

    backend: str | None = None
    backend_url: str | None = None
    model: str | None = None
    task: str | None = None
    algorithm: str | None = None
    width: int | None = None
    max_depth: int | None = None
    step_max_tokens: int | None = None

    @classmethod
    def from_value(cls, value: Any) -> ContextSettings:
        """Settings from a ContextSettings, a dict of its fields, or None.

        Raises:
            ConfigError: an unknown key or a value of another type.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(
                    f"unknown context keys {unknown}; valid keys: {', '.join(sorted(known))}"
                )
            return cls(**{k: v for k, v in value.items() if v not in (None, "")})
        raise ConfigError(
            f"cannot build a search context from a {type(value).__name__}; pass a "
            "SearchContext or a dict with keys backend, model, task, algorithm, width"
        )

    def resolved(self) -> ContextSettings:
        """These settings with empty fields filled from the environment, then defaults."""
        filled: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            value = getattr(self, name)
            if value in (None, ""):
                value = os.environ.get(var) or _DEFAULTS.get(name)
            filled[name] = value
        for name in _WHOLE_NUMBERS:
            value = filled[name]
            if value is not None:
                try:
                    filled[name] = int(value)
                except ValueError:
                    raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
        return replace(self, **filled)


def context_from_settings(settings: ContextSettings | dict[str, Any] | None) -> SearchContext:
    """The shared SearchContext for these settings (environment and defaults fill the gaps)."""
    return _build(ContextSettings.from_value(settings).resolved())


@functools.cache
def _build(settings: ContextSettings) -> SearchContext:
    from spex_graph.config import SearchConfig
    from spex_graph.context import SearchContext
    from spex_graph.defaults import make_backend

    policy = make_backend(str(settings.backend), settings.backend_url, settings.model)
    step_tokens = {"step_max_tokens": settings.step_max_tokens} if settings.step_max_tokens else {}
    config = SearchConfig.make(
        task=settings.task,
        algorithm=settings.algorithm,
        width=settings.width,
        max_depth=settings.max_depth,
        **step_tokens,
    )
    return SearchContext.create(policy, config=config)
