"""Reward-guided tree-search algorithms in ask-tell form, and a factory by name.

Each algorithm is a frozen dataclass config (`Rebase`, `Beam`, `Ets`,
`BestFirst`, `Mcts`, `BestOfN`) implementing `SearchAlgorithm`; its
selection rule is also exposed as a pure function, so SPEX can predict the
next selection from partial or predicted rewards.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from spex_graph.algorithms.base import ExpandOrder, SearchAlgorithm, SearchState
from spex_graph.algorithms.beam import Beam, select_top
from spex_graph.algorithms.best_first import BestFirst, BestFirstMode
from spex_graph.algorithms.best_of_n import BestOfN
from spex_graph.algorithms.ets import Ets, ets_allocate, step_key
from spex_graph.algorithms.mcts import Mcts, backpropagate, select_leaf, uct_score
from spex_graph.algorithms.rebase import Rebase, apportion, rebase_allocate, softmax_weights
from spex_graph.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "Beam",
    "BestFirst",
    "BestFirstMode",
    "BestOfN",
    "Ets",
    "ExpandOrder",
    "Mcts",
    "Rebase",
    "SearchAlgorithm",
    "SearchState",
    "apportion",
    "backpropagate",
    "ets_allocate",
    "make_algorithm",
    "rebase_allocate",
    "select_leaf",
    "select_top",
    "softmax_weights",
    "step_key",
    "uct_score",
]

ALGORITHMS: dict[str, type] = {
    "rebase": Rebase,
    "beam": Beam,
    "ets": Ets,
    "bestfirst": BestFirst,
    "mcts": Mcts,
    "bon": BestOfN,
}
"""Algorithm classes by the name the CLI and `make_algorithm` accept."""

_ALIASES = {"bestofn": "bon", "tot": "bestfirst", "bfs": "bestfirst"}


def make_algorithm(name: str, width: int | None = None, **kwargs: Any) -> SearchAlgorithm:
    """Build an algorithm by name ("rebase", "beam", "ets", "bestfirst", "mcts", "bon").

    `width` (None: the algorithm's default) and `kwargs` set the config's knobs.
    Names are case-insensitive and ignore "-" and "_" ("best-first", "best_of_n").
    Raises ConfigError for an unknown name, an unknown knob or an invalid value.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    cls = ALGORITHMS.get(key)
    if cls is None:
        raise ConfigError(
            f"unknown search algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    knobs = {f.name for f in dataclasses.fields(cls) if f.init}
    if width is not None:
        kwargs["width"] = width
    unknown = sorted(set(kwargs) - knobs)
    if unknown:
        raise ConfigError(
            f"{key}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(knobs))}"
        )
    return cast(SearchAlgorithm, cls(**kwargs))
