"""Benchmark modes: which SPEX techniques each one switches on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from spex_graph.errors import ConfigError
from spex_graph.policies.config import NEARLY_FREE_BATCH_COST, SpexConfig

if TYPE_CHECKING:
    from spex_graph.backends.base import Backend

PRUNE_MARGIN = 0.3
"""The prune-only mode's margin: assumed (the SPEX artifact prunes no single branch)."""

MODES: dict[str, str] = {
    "baseline": "the plain search: no speculation, no budget, no early termination",
    "spec-only": "speculation without any budget (unbounded)",
    "budget-only": "speculation under the reference's budget (first-come, no load or fairness; "
    "a lone query looks deeper, as in spex)",
    "prune-only": "trailing-branch pruning alone (prune_margin 0.3, assumed; no early stop)",
    "et-only": "early termination alone (the --early-termination rule, default paper)",
    "spex": "speculation + load-aware fair budget (+ the --early-termination rule, if given)",
    "auto": "the library default (SpexConfig.auto): spex where the backend batches for free",
    "oracle": "perfect foresight: each chosen child starts when its parent's text exists",
    "baseline+sd": "the baseline on an engine with token-level speculative decoding (sim)",
    "spex+sd": "spex on an engine with token-level speculative decoding (sim)",
}

SD_SUFFIX = "+sd"


def spex_config(
    mode: str, *, early_termination: Literal[False, "paper", "safe"] = False
) -> SpexConfig | None:
    """The SpexConfig of a mode (the oracle runs on spec-only plumbing); None for
    `auto`, which the context resolves against its backend (`SpexConfig.auto`).

    `early_termination` is the rule `et-only` uses ("paper" when False) and the
    one `spex` adds (none when False)."""
    mode = mode.removesuffix(SD_SUFFIX)
    if mode == "auto":
        return None
    if mode == "baseline":
        return SpexConfig.baseline()
    if mode in ("spec-only", "oracle"):
        return SpexConfig(budget=False, early_termination=False)
    if mode == "budget-only":
        return SpexConfig(budget_load_aware=False, budget_fair=False, early_termination=False)
    if mode == "prune-only":
        return SpexConfig(speculation=False, budget=False, prune_margin=PRUNE_MARGIN)
    if mode == "et-only":
        return SpexConfig(
            speculation=False, budget=False, early_termination=early_termination or "paper"
        )
    if mode == "spex":
        return SpexConfig(early_termination=early_termination)
    raise ConfigError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def auto_choice(backend: Backend) -> str:
    """One line: what `SpexConfig.auto` chooses on `backend`, and the figure it
    decided on (the backend's `batch_cost`)."""
    chosen = SpexConfig.auto(backend)
    cost = backend.capabilities.batch_cost
    what = "speculation and budget on" if chosen.speculation else "speculation off (the baseline)"
    if cost is None:
        return f"{what}: {backend.name} does not say what an extra concurrent sequence costs"
    return (
        f"{what}: an extra concurrent sequence costs {cost:.2f} of a decode step on "
        f"{backend.name} (<= {NEARLY_FREE_BATCH_COST} is nearly free)"
    )


def parse_modes(text: str) -> list[str]:
    """Split "baseline,spex,oracle"; baseline always runs first (speedups and the
    oracle need it)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if "baseline" in modes:
        modes.remove("baseline")
    return ["baseline", *modes]
