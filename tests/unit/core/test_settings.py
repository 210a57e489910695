"""Context settings by name: what Studio / LangGraph Platform runs pass as context."""

from __future__ import annotations

import pytest

from spex_graph.errors import ConfigError
from spex_graph.settings import ENV_VARS, ContextSettings, context_from_settings


def test_empty_settings_fill_from_environment_then_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    assert ContextSettings().resolved() == ContextSettings(
        backend="embedded", task="gsm8k", algorithm="rebase"
    )
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    monkeypatch.setenv("SPEX_WIDTH", "6")
    resolved = ContextSettings(task="math500").resolved()
    assert (resolved.backend, resolved.task, resolved.width) == ("fake", "math500", 6)


def test_settings_from_a_server_dict() -> None:
    assert ContextSettings.from_value({}) == ContextSettings()
    assert ContextSettings.from_value(None) == ContextSettings()
    assert ContextSettings.from_value({"width": 4, "model": ""}) == ContextSettings(width=4)
    with pytest.raises(ConfigError, match="unknown context keys \\['beam_width'\\]"):
        ContextSettings.from_value({"beam_width": 4})
    with pytest.raises(ConfigError, match="SearchContext or a dict"):
        ContextSettings.from_value(42)


def test_one_shared_context_per_distinct_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    first = context_from_settings({"width": 2})
    assert context_from_settings(ContextSettings(width=2)) is first
    other = context_from_settings({"width": 3, "algorithm": "beam"})
    assert other is not first
    assert (other.config.width, other.algorithm.name) == (3, "beam")


def test_bad_width_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEX_WIDTH", "four")
    with pytest.raises(ConfigError, match="width must be a whole number, not 'four'"):
        ContextSettings().resolved()


def test_depth_and_step_tokens_reach_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    monkeypatch.setenv("SPEX_MAX_DEPTH", "3")
    monkeypatch.setenv("SPEX_STEP_MAX_TOKENS", "64")
    ctx = context_from_settings({"width": 5})
    assert (ctx.config.max_depth, ctx.config.step_max_tokens) == (3, 64)
    assert ctx.algorithm.max_depth == 3  # type: ignore[attr-defined]
    monkeypatch.setenv("SPEX_MAX_DEPTH", "deep")
    with pytest.raises(ConfigError, match="max_depth must be a whole number, not 'deep'"):
        ContextSettings().resolved()
