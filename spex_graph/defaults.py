"""Default backends and rewards, and constructors by name (used by the CLI and Studio)."""

from __future__ import annotations

import os

from spex_graph.backends.base import Backend
from spex_graph.errors import ConfigError
from spex_graph.rewards.base import RewardModel

BACKENDS: tuple[str, ...] = ("embedded", "sglang", "openai", "fake")


def default_backend() -> Backend:
    """The backend used when none is passed: ``$SPEX_BACKEND`` (with ``$SPEX_BACKEND_URL``
    and ``$SPEX_MODEL``), by default the embedded CPU engine (1.5B); starts lazily."""
    return make_backend(os.environ.get("SPEX_BACKEND") or "embedded")


def make_backend(
    name: str, url: str | None = None, model: str | None = None, *, threads: int | None = None
) -> Backend:
    """A backend by name: embedded (model, threads), sglang (url), openai (url, model) or fake.

    The embedded engine runs $SPEX_MODEL (default 1.5B) on `threads`, else
    $SPEX_THREADS threads (default all cores)."""
    if name == "embedded":
        from spex_graph.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(
            model=model or os.environ.get("SPEX_MODEL", "qwen2.5-coder-1.5b"),
            threads=threads if threads is not None else _env_threads(),
        )
    if name in ("sglang", "openai"):
        url = url or os.environ.get("SPEX_BACKEND_URL")
        if not url:
            raise ConfigError(
                f"backend {name!r} needs a server URL: pass --backend-url http://host:port "
                "or set SPEX_BACKEND_URL"
            )
        if name == "sglang":
            from spex_graph.backends.sglang import SGLangBackend

            return SGLangBackend(url)
        from spex_graph.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(url, model or os.environ.get("SPEX_MODEL", "default"))
    if name == "fake":
        from spex_graph.backends.fake import ScriptedBackend

        # $SPEX_FAKE_LATENCY_S: seconds per request, to watch progress without a model.
        delay = float(os.environ.get("SPEX_FAKE_LATENCY_S") or 0)
        return ScriptedBackend(latency=lambda _request: delay)
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _env_threads() -> int | None:
    """$SPEX_THREADS: CPU threads of the embedded engine (unset: all cores)."""
    text = os.environ.get("SPEX_THREADS")
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"SPEX_THREADS must be a positive whole number, not {text!r}")
    return int(text)


def default_reward(task: str, policy: Backend) -> RewardModel:
    """The reward that works out of the box for a task on any backend.

    Game of 24 gets its exact verifier; GSM8K the arithmetic check gated
    policy confidence; other tasks the policy's confidence. Confidence needs
    token logprobs from the policy; without them every step scores 0.5.
    """
    from spex_graph.rewards.signals import (
        ArithmeticConfidenceReward,
        ConfidenceReward,
        Game24Verifier,
    )

    del policy
    if task == "game24":
        return Game24Verifier()
    if task == "gsm8k":
        return ArithmeticConfidenceReward()
    return ConfidenceReward()
