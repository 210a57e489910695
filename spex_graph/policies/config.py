"""`SpexConfig`: the switches and knobs of SPEX's three techniques."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spex_graph.errors import ConfigError

if TYPE_CHECKING:
    from spex_graph.backends.base import Backend

NEARLY_FREE_BATCH_COST = 0.05
"""`SpexConfig.auto` speculates only where one more concurrent sequence adds at most
this fraction of a one-sequence decode step (`BackendCapabilities.batch_cost`).
Speculation runs ~1.2-2x the primary sequences at once (spec_width_factor 1.2,
lookahead 3); at a cost of 0.05 per extra sequence that is a few percent on the
critical path, well under what hiding the reward barrier saves. GPU serving engines
are ~0.005 (NIM figures, `backends.base.GPU_BATCH_COST`); a CPU engine is ~0.5-1."""


class SpexConfig(BaseModel):
    """SPEX settings. Each technique switches on and off on its own; all off is the
    plain baseline through the same code path.

    Speculation (intra-query):
        speculation: expand predicted children ahead of the reward model's verdicts.
        exact: speculation may change when work happens, never what the search
            decides (the selected tree and answer equal the baseline's). Speculative
            results are only ever used for the very node (same path, same seed) the
            real search asks for, and speculative leaves never vote. With exact=False,
            finished and scored speculative leaves the search never adopted also vote
            (as in the SPEX reference artifact): more votes for free, different answers.
        lookahead_layers: how many layers beyond the real frontier to speculate (L).
        spec_width_factor: speculate this many times the predicted children
            (hedges against mispredictions; the paper uses 1.2). A selection
            predicted from rewards that are all in is exact, so it is not hedged.
        max_spec_per_layer: cap on speculative children per layer, as a multiple
            of the search width.
        solo_lookahead_layers, solo_max_spec_per_layer: the lookahead and the cap
            while this reasoner's budget holds no other query (None: as when shared;
            never below `lookahead_layers` / `max_spec_per_layer`; without a budget
            there is no one to ask, so never). Other reasoners or processes on the
            same engine are not seen; the budget's load reports still bound them all.
            A query alone takes nothing from another by speculating deeper,
            and with a slow reward model each layer further ahead hides more of its
            latency: on the artifact preset (REBASE w16, c=1) 5 layers at 4x the
            width gave 1.60x against 1.54x at the reference's 3 layers (the oracle:
            1.82x). With other queries beside it the same depth cost them more than
            it gained (modern/H200 REBASE c=4 1.36x -> 1.23x), so it is solo only.
        useful_alpha: weight of the newest layer in the moving average of the
            useful fraction of speculation.
        useful_start: the moving average's initial value.
        useful_min: below this useful fraction, speculation is throttled linearly
            (to zero at a useful fraction of zero).
        mcts_preexplore: extra MCTS frontier nodes pre-explored with virtual visits.

    Budget (inter-query):
        budget: bound in-flight speculative work across all concurrent queries.
        budget_factor: M = budget_factor x active queries x width (in requests),
            converted to tokens with the running mean tokens per request.
        budget_load_aware: shrink M when the engine reports load (queue, KV use,
            rising latency) and let it grow back when the engine idles.
        budget_fair: share the speculative budget across queries by how useful
            their speculation has been and how unsettled their answer is.

    Scoring:
        pipeline_scoring: without speculation, score each branch the moment its text
            is ready, as the REBASE and SPEX reference code does (`gen` then
            `gen(forward_only=True)` per branch); False scores the whole layer after
            the last branch (lock-step). With speculation on, scoring is always
            pipelined.

    Early termination:
        early_termination: stop a query once its answer is settled. "safe" stops only
            when no leaf the search could still produce can change the answer (a
            proved bound: with exact=True the answer equals the baseline's); "paper"
            is SPEX's heuristic (stops sooner, may change the answer); True picks
            the default rule: "safe" when `exact`, else "paper"; False: off.
            See spex_graph.policies.early_stop.
        et_alpha_bfs / et_alpha_mcts: the paper rule's alpha in
            W1 - W2 > alpha x remaining x (W2 / n2).
        et_threshold_bfs / et_threshold_mcts: the paper rule's threshold: the leading
            answer's median leaf weight (min step reward) must exceed this.
        prune_margin: prune live branches whose path reward (min step reward) trails
            the best live branch by more than this; None = never.
        prune_min_depth: only prune at or below this depth.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    speculation: bool = True
    exact: bool = True
    lookahead_layers: int = Field(3, ge=1, le=16)
    spec_width_factor: float = Field(1.2, ge=1.0, le=4.0)
    max_spec_per_layer: float = Field(2.0, gt=0.0, le=16.0)
    solo_lookahead_layers: int | None = Field(5, ge=1, le=16)
    solo_max_spec_per_layer: float = Field(4.0, gt=0.0, le=16.0)
    useful_alpha: float = Field(0.4, gt=0.0, le=1.0)
    useful_start: float = Field(0.5, ge=0.0, le=1.0)
    useful_min: float = Field(0.25, ge=0.0, le=1.0)
    mcts_preexplore: int = Field(2, ge=0, le=16)

    budget: bool = True
    budget_factor: float = Field(1.5, gt=0.0, le=64.0)
    budget_load_aware: bool = True
    budget_fair: bool = True

    pipeline_scoring: bool = True

    early_termination: bool | Literal["paper", "safe"] = False
    et_alpha_bfs: float = Field(1.0, ge=0.0)
    et_threshold_bfs: float = Field(0.9, ge=0.0, le=1.0)
    et_alpha_mcts: float = Field(0.5, ge=0.0)
    et_threshold_mcts: float = Field(0.95, ge=0.0, le=1.0)
    prune_margin: float | None = Field(None, gt=0.0)
    prune_min_depth: int = Field(2, ge=1)

    @field_validator("early_termination", mode="before")
    @classmethod
    def _known_rule(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("paper", "safe"):
            raise ValueError(f"use True, False, 'paper' or 'safe', not {value!r}")
        return value

    @property
    def et_rule(self) -> Literal["paper", "safe"] | None:
        """The early-termination rule in force (None: off); True resolves to "safe"
        in exact mode and to "paper" otherwise."""
        if self.early_termination is True:
            return "safe" if self.exact else "paper"
        if self.early_termination is False:
            return None
        return self.early_termination

    @classmethod
    def make(cls, **values: object) -> SpexConfig:
        """Build a config, turning validation errors into one-line ConfigErrors."""
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "spex"
            raise ConfigError(f"invalid SPEX option {where}: {err['msg']}") from None

    @classmethod
    def auto(cls, backend: Backend | None = None) -> SpexConfig:
        """The library default: SPEX where it cannot make the search slower on `backend`.

        Speculation and its load-aware budget are on when the backend reports that
        extra concurrent sequences are nearly free (`capabilities.batch_cost` at most
        `NEARLY_FREE_BATCH_COST`: GPU serving engines, the simulator); off where they
        cost real time (the embedded CPU engine) or where the cost is unknown (no
        backend, OpenAI-compatible and LangChain clients: pass `SpexConfig()` to opt
        in). Early termination stays available (off by default, as it may change
        answers; pass `early_termination=True` via `model_copy(update=...)`).
        """
        cost = backend.capabilities.batch_cost if backend is not None else None
        free = cost is not None and cost <= NEARLY_FREE_BATCH_COST
        return cls(speculation=free, budget=free, early_termination=False)

    @classmethod
    def baseline(cls) -> SpexConfig:
        """Everything off: the plain search."""
        return cls(speculation=False, budget=False, early_termination=False)

    @classmethod
    def full(cls) -> SpexConfig:
        """All three techniques on (exact mode, so early termination is the safe rule)."""
        return cls(speculation=True, budget=True, early_termination=True)
