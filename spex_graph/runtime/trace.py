"""Per-request trace records: what ran, when, and whether it was useful."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RequestKind = Literal["policy", "reward"]
Outcome = Literal["pending", "used", "wasted", "cancelled", "failed"]


@dataclass
class RequestRecord:
    """One request the dispatcher sent to a backend.

    Attributes:
        request_id: the id the engine saw (for abort).
        query_id: the query it belongs to.
        kind: "policy" (generation) or "reward" (scoring).
        key: the node path it was for, as "0/2/1".
        speculative: submitted ahead of the real selection.
        enqueued_at, started_at, finished_at: clock readings in seconds.
        outcome: used (its result entered the tree), wasted (finished, never used),
            cancelled (aborted in flight), failed (the engine errored), or pending.
        prompt_tokens, completion_tokens: engine counts (0 until finished).
    """

    request_id: str
    query_id: str
    kind: RequestKind
    key: str
    speculative: bool
    enqueued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    outcome: Outcome = "pending"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class TokenStats:
    """Token and speculation totals for a query.

    Attributes:
        primary: completion tokens of requests the real search asked for first.
        speculative_used: tokens of speculative requests the search then used.
        speculative_wasted: tokens of speculative requests never used (incl. cancelled).
        speculative_requests, speculative_hits: counts behind the hit rate.
        cancelled_requests: requests aborted in flight.
    """

    primary: int
    speculative_used: int
    speculative_wasted: int
    speculative_requests: int
    speculative_hits: int
    cancelled_requests: int

    @property
    def hit_rate(self) -> float:
        """Fraction of speculative requests whose result was used (0 when none)."""
        if self.speculative_requests == 0:
            return 0.0
        return self.speculative_hits / self.speculative_requests

    @property
    def total(self) -> int:
        """All generated tokens, useful or not."""
        return self.primary + self.speculative_used + self.speculative_wasted


def token_stats(records: list[RequestRecord]) -> TokenStats:
    """Summarise the policy requests of one query."""
    primary = used = wasted = spec = hits = cancelled = 0
    for r in records:
        if r.kind != "policy":
            continue
        if r.outcome == "cancelled":
            cancelled += 1
        if not r.speculative:
            primary += r.completion_tokens
            continue
        spec += 1
        if r.outcome == "used":
            hits += 1
            used += r.completion_tokens
        else:
            wasted += r.completion_tokens
    return TokenStats(primary, used, wasted, spec, hits, cancelled)
