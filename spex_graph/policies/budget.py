"""The inter-query budget controller: one bound on speculative work for all queries.

Primary work always runs and is only counted. Speculative requests ask for a
grant: at most `M - primary_in_flight - speculative_in_flight` (the SPEX
reference rule), measured in *tokens* rather than requests, with

    M = budget_factor x sum of active queries' widths x mean tokens per request
        x load scale x reward scale

The load scale shrinks M when the policy engine reports a queue, high KV use or
a rising per-token latency, and lets it grow (up to 2x) while the engine idles.
The reward scale shrinks it while primary scoring keeps the reward engine busy:
there the reward engine is the bottleneck and speculation cannot shorten the
wait. Where the engines have idle capacity, speculation hides the reward
barrier; where they have none, M is 0 and the search runs as the baseline does.
Speculative sequences also keep to the room below the policy engine's compute knee
(`free_batch`: past it every speculative token displaces a primary one), and a query
that ran most of its life on an engine without room for speculation does not start
speculating at its end (`late_start_limit`).
With `fair` on, each query may hold at most its share of the speculative pool,
weighted by how useful its speculation has been and how unsettled its answer
is, so easy or mispredicting queries yield capacity to the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class Claim:
    """Budget held by one speculative request; release it exactly once.

    Attributes:
        query_id: the query holding it.
        tokens: tokens it counts for.
        value: expected critical-path gain of the request (probability the search
            will use it times the time it saves, in relative units); revocation and
            displacement take the lowest value first.
        revoke: cancels the request (set by whoever launched it); None = cannot.
    """

    query_id: str
    tokens: float
    released: bool = False
    value: float = 1.0
    revoke: Callable[[], None] | None = None


@dataclass
class BusyMeter:
    """Time-weighted fraction of recent time an engine had primary work in flight
    (an exponential moving average over `tau` seconds of the dispatcher's clock)."""

    tau: float = 2.0
    in_flight: int = 0
    fraction: float = 1.0  # busy until shown otherwise: the first burst must not pile on
    _since: float | None = None

    def _advance(self, now: float) -> None:
        if self._since is not None and now > self._since:
            keep = math.exp(-(now - self._since) / self.tau)
            busy = 1.0 if self.in_flight > 0 else 0.0
            self.fraction = keep * self.fraction + (1.0 - keep) * busy
        self._since = now

    def change(self, delta: int, now: float) -> None:
        """`delta` primary requests started (+) or ended (-) at `now`."""
        self._advance(now)
        self.in_flight = max(0, self.in_flight + delta)

    @property
    def observed(self) -> bool:
        """Whether any start or end was recorded yet."""
        return self._since is not None

    def busy(self, now: float) -> float:
        """The busy fraction as of `now`."""
        self._advance(now)
        return self.fraction


@dataclass
class _QueryShare:
    width: int
    useful: float = 0.5
    unsettled: float = 1.0
    spec_tokens: float = 0.0
    life: float = 0.0  # seconds between load reports while registered
    no_room: float = 0.0  # of those, seconds the budget had no room for speculation


@dataclass
class BudgetController:
    """Shared by every query a reasoner runs (see the module docstring).

    Attributes:
        factor: budget_factor in M.
        load_aware: adapt M to engine load reports and latency.
        fair: cap each query at its weighted share of the speculative pool.
        tokens_per_request: running mean of completion tokens (EMA, weight 0.1).
        load_scale: current multiplier on M from load (0 .. 2.0).
        awaiting_load_report: M is 0 until the policy engine's first load report (set
            where the engine reports load): a burst of new queries must not pile
            speculation onto an engine whose load is not known yet.
        reward_busy_full, reward_busy_zero: the reward engine's busy fraction (primary
            scoring in flight, time-weighted) up to which M is whole, and from which
            it is 0 (linear between). Chosen on six H100 cells of the never-slower
            matrix (REBASE w16, both presets, concurrency 1-64): of (0.3, 0.6),
            (0.4, 0.7) and (0.5, 0.9), the last gained most at concurrency 4 and 16
            and was within 0.01x of the best at 1 and 64.
        free_batch: the policy engine's `BackendCapabilities.free_batch` (None =
            unknown): speculative sequences are kept within the room between the
            primaries running and it.
        late_start_limit: a query that has run on an engine with no room for
            speculation for more than this fraction of its life so far never
            speculates (its share of the room is 0). Room that appears near its end
            comes from the other queries of a saturated wave finishing; spending it
            on some of the last queries slows the others beside them, so the slowest
            tenth of a 64-query wave on the artifact preset finished later than in
            the baseline (REBASE p90 77.90 s vs 77.88 s, MCTS 139.86 s vs 139.03 s).
            A cap on how much speculation may lengthen the other queries' steps was
            tried first (at 10%, 30%, 50%, 100% of a step) and fixed some of these
            cells while breaking others. 0.8 still failed modern/H200 REBASE c=64
            (p90 9.4329 s vs 9.4311 s); 0.65 cost artifact/H100 REBASE c=4 1.13x
            against 1.18x at 0.7.
        batch_room: speculative sequences that fit under `free_batch`, from the latest
            load report (inf while unknown).
        policy_speculative_decoding: the policy engine runs token-level speculative
            decoding (`BackendCapabilities.speculative_decoding`): speculative scoring
            then runs only for a query alone in the budget (see
            `allow_speculative_score`), and `sd_reward_floor` applies.
        sd_reward_floor: beside such an engine, with other queries in the budget, M
            is 0 while the reward scale is below this (the PRM more than ~80% busy
            with primary scoring, or its queue or KV pool nearly full). SD already
            shortens generation, so the part of the critical path speculation hides
            is small, and while the PRM is the bottleneck the extra sequences cost
            the other queries more than that. Without the floor SPEX+SD trailed SD
            alone in three cells (artifact best-first c=4, H200 mean 8.447 s vs
            8.434 s; H100 p90 14.600 s vs 14.599 s; artifact/H100 MCTS c=16 p90
            28.851 s vs 28.849 s); with it they equal SD alone. It costs gains
            elsewhere (artifact/H200 c=4 REBASE 4.05 s -> 4.17 s, SD alone 4.27 s).
            On plain engines a floor (0.3) broke a p90, so it is kept to SD engines.
    """

    factor: float = 1.5
    load_aware: bool = True
    fair: bool = True
    tokens_per_request: float = 64.0
    load_scale: float = 1.0
    primary_tokens: float = 0.0
    spec_tokens: float = 0.0
    reward_busy_limit: float = 0.6
    awaiting_load_report: bool = False
    reward_busy_full: float = 0.5
    reward_busy_zero: float = 0.9
    free_batch: int | None = None
    late_start_limit: float = 0.7
    batch_room: float = math.inf
    policy_speculative_decoding: bool = False
    sd_reward_floor: float = 0.25
    _room_seen_at: float | None = None  # the clock at the latest load report
    _queries: dict[str, _QueryShare] = field(default_factory=dict)
    _best_latency: float = math.inf
    _now: float = 0.0  # the latest clock reading the budget was given
    reward_meter: BusyMeter = field(default_factory=BusyMeter)
    reward_waiting: int = 0
    reward_queue: float = 0.0
    reward_kv: float = 0.0
    revoked: int = 0
    _live: dict[Claim, None] = field(default_factory=dict)  # insertion order: deterministic

    # -- queries -----------------------------------------------------------

    def register(self, query_id: str, width: int) -> None:
        """A query starts; its width counts towards M."""
        self._account_room()  # time before it started is not part of its life
        self._queries.setdefault(query_id, _QueryShare(width=max(1, width)))

    def unregister(self, query_id: str) -> None:
        """A query ended (its claims must have been released)."""
        self._queries.pop(query_id, None)

    @property
    def active_queries(self) -> int:
        """Queries registered now."""
        return len(self._queries)

    @property
    def _shared_sd_engine(self) -> bool:
        """Other queries share the budget on a policy engine with speculative decoding
        (see `sd_reward_floor` and `allow_speculative_score`)."""
        return self.policy_speculative_decoding and self.active_queries > 1

    def report(
        self, query_id: str, *, useful: float | None = None, unsettled: float | None = None
    ) -> None:
        """Update a query's fairness inputs (useful fraction, answer unsettledness, 0..1)."""
        share = self._queries.get(query_id)
        if share is None:
            return
        if useful is not None:
            share.useful = min(1.0, max(0.0, useful))
        if unsettled is not None:
            share.unsettled = min(1.0, max(0.0, unsettled))

    # -- capacity ----------------------------------------------------------

    @property
    def capacity(self) -> float:
        """M in tokens."""
        if self.load_aware and self.awaiting_load_report:
            return 0.0
        widths = sum(q.width for q in self._queries.values())
        by_load = self.factor * widths * self.tokens_per_request * self.load_scale
        by_room = self.primary_tokens + self.batch_room * self.tokens_per_request
        return min(by_load * self.reward_scale, by_room)

    @property
    def reward_scale(self) -> float:
        """Multiplier on M from the reward engine: 1 while primary scoring keeps it busy
        at most `reward_busy_full` of the time, 0 from `reward_busy_zero` on, once
        its reported queue holds a whole layer of every active query's scoring
        requests, or once its KV pool is 80% reserved (shrinking from 60%, as for the
        policy engine; this also sees other clients' work on a shared reward server).
        A busy reward engine is the bottleneck: speculation cannot shorten the wait
        there, and its extra work only lengthens it. Beside a policy engine with
        speculative decoding, a scale below `sd_reward_floor` counts as 0 while other
        queries share the budget."""
        if not self.load_aware:
            return 1.0
        meter = self.reward_meter
        # no primary scoring seen yet: no evidence of a busy reward engine
        busy = meter.busy(self._now) if meter.observed else 0.0
        span = max(1e-9, self.reward_busy_zero - self.reward_busy_full)
        by_busy = 1.0 - (busy - self.reward_busy_full) / span
        widths = sum(q.width for q in self._queries.values())
        by_queue = 1.0 - self.reward_queue / max(1.0, float(widths))
        by_kv = (0.8 - self.reward_kv) / 0.2
        scale = max(0.0, min(1.0, by_busy, by_queue, by_kv))
        return 0.0 if self._shared_sd_engine and scale < self.sd_reward_floor else scale

    def free(self) -> float:
        """Tokens a new speculative grant may use now (never negative)."""
        return max(0.0, self.capacity - self.primary_tokens - self.spec_tokens)

    def share(self, query_id: str) -> float:
        """The most speculative tokens `query_id` may hold (its weighted share of the pool)."""
        pool = max(0.0, self.capacity - self.primary_tokens)
        if not self.fair or len(self._queries) <= 1:
            return pool
        weights = {q: self._weight(s) for q, s in self._queries.items()}
        total = sum(weights.values())
        return pool * weights.get(query_id, 0.0) / total if total > 0 else 0.0

    @staticmethod
    def _weight(share: _QueryShare) -> float:
        return share.width * (0.25 + share.useful) * (0.5 + share.unsettled)

    # -- work --------------------------------------------------------------

    def primary_started(self, tokens: float) -> None:
        """Count a primary request (never refused)."""
        self.primary_tokens += tokens

    def primary_finished(self, tokens: float) -> None:
        """A primary request ended; `tokens` is what `primary_started` counted."""
        self.primary_tokens = max(0.0, self.primary_tokens - tokens)

    def observe_tokens(self, tokens: int) -> None:
        """Feed a finished request's completion tokens to the tokens-per-request mean."""
        if tokens > 0:
            self.tokens_per_request += 0.1 * (tokens - self.tokens_per_request)

    def try_grant(
        self,
        query_id: str,
        n: int,
        tokens_each: float | None = None,
        values: Sequence[float] = (),
    ) -> list[Claim]:
        """Grant up to `n` speculative requests of `tokens_each` tokens; returns the claims.

        `values` (best first) are the requests' expected gains. When the pool is full,
        a request may displace live speculation of other queries worth less than half
        its value (revoking it), so capacity goes to the most valuable work across
        queries, not to whoever asked first.
        """
        each = max(1.0, tokens_each if tokens_each is not None else self.tokens_per_request)
        share = self._queries.get(query_id)
        if share is None or n <= 0 or (self.load_aware and self.started_late(query_id)):
            return []
        by_share = math.floor(max(0.0, self.share(query_id) - share.spec_tokens) / each)
        claims: list[Claim] = []
        for i in range(max(0, min(n, by_share))):
            value = values[i] if i < len(values) else 1.0
            if self.free() < each and not self._displace(query_id, each, value):
                break
            claim = Claim(query_id, each, value=value)
            self.spec_tokens += each
            share.spec_tokens += each
            self._live[claim] = None
            claims.append(claim)
        return claims

    def _displace(self, query_id: str, tokens: float, value: float) -> bool:
        """Revoke other queries' cheapest live claims worth < value / 2 to free `tokens`."""
        victims = sorted(
            (
                c
                for c in self._live
                if c.query_id != query_id and c.revoke is not None and c.value < value / 2
            ),
            key=lambda c: c.value,
        )
        freed = self.free()
        chosen: list[Claim] = []
        for claim in victims:
            if freed >= tokens:
                break
            chosen.append(claim)
            freed += claim.tokens
        if freed < tokens:
            return False
        for claim in chosen:
            self._revoke(claim)
        return True

    def _revoke(self, claim: Claim) -> None:
        revoke = claim.revoke
        self.release(claim)
        self.revoked += 1
        if revoke is not None:
            revoke()

    def revoke_excess(self) -> int:
        """When capacity dropped below what speculation holds, revoke the lowest-value
        claims until it fits; returns how many were revoked."""
        limit = max(0.0, self.capacity - self.primary_tokens)
        count = 0
        if self.spec_tokens <= limit + 1e-9:
            return 0
        for claim in sorted(self._live, key=lambda c: c.value):
            if self.spec_tokens <= limit + 1e-9:
                break
            if claim.revoke is None:
                continue
            self._revoke(claim)
            count += 1
        return count

    def release(self, claim: Claim) -> None:
        """Return a claim's tokens (idempotent)."""
        if claim.released:
            return
        claim.released = True
        self._live.pop(claim, None)
        self.spec_tokens = max(0.0, self.spec_tokens - claim.tokens)
        share = self._queries.get(claim.query_id)
        if share is not None:
            share.spec_tokens = max(0.0, share.spec_tokens - claim.tokens)

    # -- the reward engine ---------------------------------------------------

    def no_load_report(self) -> None:
        """The policy engine gives no load report (none offered, or it failed): stop
        waiting for one."""
        self.awaiting_load_report = False

    def tick(self, now: float) -> None:
        """Tell the budget the time (grants read the reward meter as of then)."""
        self._now = max(self._now, now)

    def reward_started(self, now: float) -> None:
        """A primary scoring request was sent to the reward engine."""
        self.tick(now)
        self.reward_meter.change(+1, now)

    def reward_finished(self, now: float) -> None:
        """A primary scoring request ended."""
        self.tick(now)
        self.reward_meter.change(-1, now)

    def observe_reward_load(self, waiting: int, kv_usage: float | None = None) -> None:
        """The reward engine's queue length and KV use (0..1, None = unknown) from its
        load report.

        A long queue on the reward engine means scoring is the bottleneck: every query
        waits there, speculation cannot shorten that wait, and its side effects
        (other arrival orders, a colder prefix cache) only lengthen it. M shrinks with
        the queue (its peak, decaying 20% per report; see `reward_scale`) and live
        speculation beyond it is revoked.
        """
        self.reward_waiting = max(0, waiting)
        if kv_usage is not None:
            self.reward_kv = min(1.0, max(0.0, kv_usage))
        if not self.load_aware:
            return
        # peak-hold with decay: a queue that empties for one report has not gone away
        self.reward_queue = max(float(self.reward_waiting), 0.8 * self.reward_queue)
        self.revoke_excess()

    def allow_speculative_score(self, now: float) -> bool:
        """Whether a speculative scoring request may go to the reward engine now.

        A reward model's pass is a prefill: compute-bound, one iteration, nothing to
        batch for free and nothing SGLang pre-empts. So speculative scoring runs only
        while primary scoring leaves the reward engine mostly idle (busy fraction below
        `reward_busy_limit`), nothing waits in its queue and its KV pool is under 60%
        reserved. Without load awareness (the reference budget) it is always allowed.

        Beside a policy engine with token-level speculative decoding it runs only
        for a query alone in the budget: that engine generates so fast that the PRM
        is the bottleneck, and a speculative pass there delays the other queries'
        primary scoring. On the simulator's modern stack at c=4 it made SPEX+SD
        slower than SD alone (ETS on the H200: p90 2.756 s vs 2.713 s); refused
        there it is faster (2.583 s). On plain engines the same refusal cost a lot
        (modern/H200 REBASE c=4 1.36x -> 1.24x), so it is kept to SD engines.
        """
        self.tick(now)
        if not self.load_aware:
            return True
        if self._shared_sd_engine:
            return False
        return (
            self.reward_waiting == 0
            and self.reward_kv < 0.6
            and self.reward_meter.busy(now) < self.reward_busy_limit
        )

    def may_retry_refused_scores(self) -> bool:
        """Whether a speculative score refused earlier may be sent once the reward
        engine has room again (else it waits until the search adopts its node).

        Only for a query alone in the budget, on a policy engine without token-level
        speculative decoding. Alone, the retry took the done-when run (artifact,
        REBASE w16, c=1) from 87.9% to 88.9% of the oracle. Beside other queries the
        retried passes land on a reward engine their primary scoring keeps busy:
        artifact/H100 MCTS c=16 went from 1.17x to 1.07x (modern/H100 gained, 1.39x
        -> 1.55x). With speculative decoding the reward engine is the bottleneck even
        for one query: SPEX+SD at c=1 lost 1-2% (artifact/H100 ETS 3.58x -> 3.50x,
        beam 3.20x -> 3.15x).
        """
        return self.active_queries <= 1 and not self.policy_speculative_decoding

    # -- load --------------------------------------------------------------

    def observe_load(
        self,
        running: int,
        waiting: int,
        kv_usage: float | None,
        max_running: int,
        free_batch: int | None = None,
        speculative_decoding: bool | None = None,
    ) -> None:
        """Adapt the load scale to the policy engine's load report, then revoke
        speculation beyond the new capacity.

        Anything queued, or a KV pool over 80% reserved (stock SGLang pre-empts for
        priority only when the batch is full by count, never for KV), leaves no room
        for speculation: M drops to 0. Between 60% and 80% KV it shrinks linearly;
        while the engine idles it may grow to 2x. Where the engine's `free_batch` is
        known, speculation also keeps to the sequences that fit between the running
        primaries and it: past that knee a decode step is compute-bound, so every
        speculative token takes the place of a primary one.
        """
        if not self.load_aware:
            return
        if free_batch is not None:  # e.g. learnt from the server's info after the start
            self.free_batch = free_batch
        if speculative_decoding is not None:
            self.policy_speculative_decoding = speculative_decoding
        self._account_room()
        # `running` counts speculative requests too; live claims are (an upper bound
        # on) those
        primaries = max(0, running - len(self._live))
        self.batch_room = self.room_for_speculation(primaries)
        usage = kv_usage or 0.0
        target = 1.0
        if waiting > 0 or usage >= 0.8:
            target = 0.0
        elif usage > 0.6:
            target = (0.8 - usage) / 0.2
        elif max_running > 0 and running < 0.5 * max_running:
            target = 2.0 if usage < 0.4 else 1.0
        # shrink at once, grow gradually (the first report is taken as it is)
        if self.awaiting_load_report:
            self.awaiting_load_report = False
            self.load_scale = target
        elif target < self.load_scale:
            self.load_scale = target
        else:
            self.load_scale = 0.5 * (self.load_scale + target)
        self.load_scale = min(2.0, max(0.0, self.load_scale))
        self.revoke_excess()

    def room_for_speculation(self, primaries: int) -> float:
        """Speculative sequences the policy engine takes beside `primaries` running
        sequences: below its `free_batch` (inf where that is unknown)."""
        if self.free_batch is None:
            return math.inf
        return max(0.0, float(self.free_batch - primaries))

    def _account_room(self) -> None:
        """Charge the time since the last load report to every registered query's
        life, and to its time without room where the budget had none."""
        now, since = self._now, self._room_seen_at
        self._room_seen_at = now
        if since is None or now <= since or self.awaiting_load_report:
            return  # the wait for the first report is no evidence of a full engine
        no_room = self.capacity - self.primary_tokens <= 0.0
        for share in self._queries.values():
            share.life += now - since
            if no_room:
                share.no_room += now - since

    def started_late(self, query_id: str) -> bool:
        """Whether `query_id` ran more than `late_start_limit` of its life so far on
        an engine without room for speculation (see the attribute)."""
        share = self._queries.get(query_id)
        if share is None or share.life <= 0.0:
            return False
        return share.no_room > self.late_start_limit * share.life

    def observe_latency(self, seconds_per_token: float) -> None:
        """Shrink M when per-token latency rises well above the best seen."""
        if not self.load_aware or seconds_per_token <= 0:
            return
        # the best latency drifts up 2% per sample, so it forgets a quiet period
        self._best_latency = min(seconds_per_token, self._best_latency * 1.02)
        if seconds_per_token > 1.5 * self._best_latency:
            self.load_scale = max(0.0, self.load_scale * 0.9)
        elif seconds_per_token < 1.1 * self._best_latency:
            self.load_scale = min(2.0, self.load_scale * 1.05)
