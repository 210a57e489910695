"""A simulated continuous-batching LLM engine (SGLang-like) on the event loop's clock.

`SimEngine` runs iterations in a background task. Each iteration

1. admits waiting requests in priority order (higher `priority` first, FIFO
   within a priority) while the running batch has room (`max_running_requests`)
   and the KV pool can hold the request's prompt plus its whole output (tokens
   are reserved at admission, so nothing is ever retracted), up to
   `max_prefill_tokens` uncached prompt tokens per iteration; admission stops
   at the first request that does not fit (no overtaking);
2. prefills the admitted requests' *uncached* prompt tokens (prefix cache
   below), which also yields their first output token;
3. decodes one token for every request that was already running;

and lasts `profile.iteration_time(decode batch, KV read, prefill tokens)`
seconds of loop time (virtual on a `VirtualEventLoop`). A request finishes when
it has generated its `output_tokens`; `output_tokens=0` is a prefill-only
request (a reward model's scoring pass) that finishes with its prefill.

Priority scheduling follows stock SGLang with `--enable-priority-scheduling`
(`scheduler.py::_get_new_batch_prefill_raw`, `schedule_policy.py::preempt_to_schedule`):
the queue is ordered by priority, then arrival; when the running batch is full
by count (`max_running_requests`), a waiting request may pre-empt running ones
whose priority is lower by more than `preemption_threshold` (default 10),
lowest priority and newest first, as many as its KV reservation needs. A
pre-empted request goes back to the queue and keeps the tokens it generated;
readmitted, it recomputes prompt (minus cached prefix) and those tokens. Stock
SGLang does not pre-empt when only the KV pool is short; `preemption="strict"`
does (an option, not SGLang), and `preemption="off"` is
`--disable-priority-preemption`. `priority_scheduling=False` is plain FCFS.

Prefix cache: a request names the prompt prefixes it contains at step
boundaries, as `(key, tokens up to there)` pairs, shortest first. At admission
the longest chain of leading keys already cached counts as cached tokens (at
least one prompt token is always computed); then all its keys are inserted,
and at finish `finish_key` (prompt + output) is, as SGLang's radix cache keeps
generated tokens. Entries are sized by the tokens they add to their parent
prefix and evicted least-recently-used when cache plus reserved KV exceed the
pool. Requests admitted in the same iteration share each other's prefixes.

With `spec_decoding` (an EAGLE-style `SpecDecoding`), each iteration drafts and
verifies, every running request keeps `accept_length` tokens per iteration, and
the iteration takes `spec_decoding.iteration_time(...)`; output tokens are then
counted when a request finishes or is aborted.

Bookkeeping is O(1) per iteration plus O(log n) per admitted or finished
request, so hundreds of concurrent searches simulate in seconds. Memory is flat
however long the engine lives: its counters are totals (`EngineStats`), and its
per-request log keeps only the most recent `log_window` requests.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from spex_graph.errors import BackendRequestError, BackendUnavailableError, RequestCancelledError
from spex_graph.sim.profiles import GpuProfile
from spex_graph.sim.spec_decoding import SpecDecoding

__all__ = ["EngineLoad", "EngineStats", "RequestLog", "SimEngine", "SimResult"]


@dataclass(slots=True)
class RequestLog:
    """One request's life on the engine (one Gantt bar).

    Attributes:
        request_id: the engine request id.
        kind: free label ("policy", "reward", ...).
        priority: scheduling priority (higher first).
        prompt_tokens, output_tokens: sizes; cached_tokens: prompt tokens served from cache.
        submitted_at, started_at, finished_at: loop times (None until they happen).
        outcome: "pending", "finished" or "aborted".
        generated_tokens: output tokens the engine produced for it (all of them when
            finished; those produced before the abort when aborted).
    """

    request_id: str
    kind: str
    priority: int
    prompt_tokens: int
    output_tokens: int
    submitted_at: float
    cached_tokens: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str = "pending"
    generated_tokens: int = 0
    preempted: int = 0
    """Times the request was pre-empted (freed and re-queued) for a higher priority."""


@dataclass(frozen=True)
class SimResult:
    """What a finished request reports back.

    Attributes:
        request_id: the engine request id.
        prompt_tokens, cached_tokens, output_tokens: token counts.
        submitted_at, started_at, finished_at: loop times.
    """

    request_id: str
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    submitted_at: float
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class EngineLoad:
    """A load snapshot (what SGLang's `/v1/loads` reports).

    Attributes:
        running, waiting: request counts.
        kv_used_tokens: KV tokens reserved by running requests.
        kv_capacity_tokens: pool size.
        cache_tokens: tokens held by the prefix cache (evictable).
    """

    running: int
    waiting: int
    kv_used_tokens: int
    kv_capacity_tokens: int
    cache_tokens: int

    @property
    def kv_usage(self) -> float:
        """Reserved fraction of the KV pool."""
        return self.kv_used_tokens / self.kv_capacity_tokens if self.kv_capacity_tokens else 0.0


@dataclass
class EngineStats:
    """Counters since the engine was created.

    Attributes:
        busy_time: loop seconds spent in iterations.
        iterations: iterations run.
        tokens_generated: output tokens produced (aborted requests' tokens included).
        prefill_tokens: prompt tokens computed; cached_tokens: prompt tokens served from cache.
        finished, aborted, preempted: request counts.
        aborted_tokens: output tokens generated for requests that were then aborted,
            by request kind ("policy", "reward", ...).
        batch_total: the decode batch plus newly prefilled requests, summed over
            iterations; max_batch: its largest value.
        first_submit_at, last_finish_at: loop times bounding the engine's activity.

    Every field is a total, so the stats stay the same size however many requests
    the engine serves.
    """

    busy_time: float = 0.0
    iterations: int = 0
    tokens_generated: int = 0
    prefill_tokens: int = 0
    cached_tokens: int = 0
    finished: int = 0
    aborted: int = 0
    preempted: int = 0
    aborted_tokens: dict[str, int] = field(default_factory=dict)
    batch_total: int = 0
    max_batch: int = 0
    first_submit_at: float | None = None
    last_finish_at: float | None = None

    def utilisation(self, until: float | None = None) -> float:
        """Busy fraction of the time from the first submit to `until` (default last finish)."""
        if self.first_submit_at is None:
            return 0.0
        end = until if until is not None else self.last_finish_at
        span = (end or self.first_submit_at) - self.first_submit_at
        return self.busy_time / span if span > 0 else 0.0

    @property
    def mean_batch(self) -> float:
        """Mean batch size over iterations."""
        return self.batch_total / self.iterations if self.iterations else 0.0


@dataclass
class _Req:
    log: RequestLog
    future: asyncio.Future[SimResult]
    prefix: tuple[tuple[Hashable, int], ...]
    finish_key: Hashable | None
    seq: int
    joined_step: int = 0
    finish_step: int = 0
    admission: int = 0
    done_tokens: int = 0  # generated before the last pre-emption

    @property
    def reserve(self) -> int:
        return self.log.prompt_tokens + self.log.output_tokens

    @property
    def context0(self) -> int:
        """KV tokens at admission: the prompt plus tokens kept from before a pre-emption."""
        return self.log.prompt_tokens + self.done_tokens


class SimEngine:
    """A continuous-batching engine simulated on the running loop's clock.

    Create it anywhere; its scheduler task starts on the first `generate` (on
    that call's loop). Use one instance per simulated GPU; a policy and a reward
    model share a GPU by sharing the instance.

    Attributes:
        profile: the GPU/model timing profile.
        name: label for traces.
        prefix_cache: whether the prefix cache is on.
        stats: counters (see EngineStats).
        log: the most recent `log_window` requests, in submission order (for Gantt
            plots and tests; totals over every request are in `stats`).
    """

    def __init__(
        self,
        profile: GpuProfile,
        *,
        name: str = "engine",
        prefix_cache: bool = True,
        spec_decoding: SpecDecoding | None = None,
        priority_scheduling: bool = True,
        preemption: str = "sglang",
        preemption_threshold: int = 10,
        log_window: int = 1000,
    ):
        """An idle engine for `profile` (with token-level speculative decoding if given;
        scheduling options: see the module docstring; `log_window`: requests `log` keeps)."""
        if preemption not in ("off", "sglang", "strict"):
            raise ValueError(f"preemption must be 'off', 'sglang' or 'strict', not {preemption!r}")
        if log_window < 0:
            raise ValueError(f"log_window must be 0 or more, not {log_window}")
        self.profile = profile
        self.spec_decoding = spec_decoding
        self.name = name
        self.prefix_cache = prefix_cache
        self.priority_scheduling = priority_scheduling
        self.preemption = preemption if priority_scheduling else "off"
        self.preemption_threshold = preemption_threshold
        self._admissions = itertools.count(1)
        self.stats = EngineStats()
        # bounded: a long-lived engine (a sim backend behind a server) must not grow
        self.log: deque[RequestLog] = deque(maxlen=log_window)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._seq = itertools.count()
        self._waiting: dict[str, _Req] = {}
        self._queue: list[tuple[int, int, str]] = []
        self._running: dict[str, _Req] = {}
        self._finish_heap: list[tuple[int, int, str]] = []
        self._step = 0
        self._reserved = 0
        self._decoders = 0
        self._decode_prompt = 0
        self._decode_joined = 0
        self._cache: OrderedDict[Hashable, int] = OrderedDict()
        self._cache_tokens = 0
        self._iterating = False

    # ------------------------------------------------------------------ public API

    def now(self) -> float:
        """The engine's loop time (virtual on a virtual loop)."""
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    async def generate(
        self,
        request_id: str,
        prompt_tokens: int,
        output_tokens: int,
        *,
        prefix: Sequence[tuple[Hashable, int]] = (),
        finish_key: Hashable | None = None,
        priority: int = 0,
        kind: str = "policy",
    ) -> SimResult:
        """Run one request to completion and return its timings.

        Args:
            request_id: unique id (for `abort`).
            prompt_tokens: prompt length in tokens (>= 1).
            output_tokens: tokens to generate (0 = prefill only).
            prefix: `(key, tokens up to the key)` for prompt prefixes at step
                boundaries, shortest first (the prefix cache).
            finish_key: cache key for prompt + output, inserted at finish.
            priority: higher is admitted first.
            kind: label for the log.

        Raises:
            RequestCancelledError: `abort(request_id)` was called.
            BackendRequestError: the request can never fit in the KV pool.
            BackendUnavailableError: the engine is closed.
        """
        if self._closed:
            raise BackendUnavailableError(f"simulated engine {self.name!r} is closed")
        prompt_tokens = max(1, int(prompt_tokens))
        output_tokens = max(0, int(output_tokens))
        if prompt_tokens + output_tokens > self.profile.kv_capacity_tokens:
            raise BackendRequestError(
                f"request of {prompt_tokens + output_tokens} tokens exceeds the "
                f"{self.profile.kv_capacity_tokens}-token KV pool of {self.name!r}"
            )
        if request_id in self._waiting or request_id in self._running:
            raise BackendRequestError(f"request id {request_id!r} is already in flight")
        self._ensure_started()
        assert self._loop is not None and self._wake is not None
        now = self._loop.time()
        log = RequestLog(request_id, kind, priority, prompt_tokens, output_tokens, now)
        self.log.append(log)
        if self.stats.first_submit_at is None:
            self.stats.first_submit_at = now
        seq = next(self._seq)
        req = _Req(log, self._loop.create_future(), tuple(prefix), finish_key, seq)
        self._waiting[request_id] = req
        self._enqueue(req)
        self._wake.set()
        try:
            return await req.future
        finally:
            # an abort's error holds this frame in its traceback; with `req` (and so the
            # future holding that error) still here, the two would wait for a full
            # collection instead of going when the caller drops the error
            del req

    def promote(self, request_id: str, priority: int) -> bool:
        """Raise a queued or running request to at least `priority` (a primary request
        joined it); returns whether it was found."""
        req = self._waiting.get(request_id) or self._running.get(request_id)
        if req is None:
            return False
        if priority > req.log.priority:
            req.log.priority = priority
            if request_id in self._waiting:
                self._enqueue(req)
                if self._wake is not None:
                    self._wake.set()
        return True

    def abort(self, request_id: str) -> bool:
        """Remove a queued or running request and free its KV; its waiter gets
        RequestCancelledError. Returns whether the request was found."""
        req = self._waiting.pop(request_id, None)
        if req is not None:
            req.log.generated_tokens = req.done_tokens  # kept from before a pre-emption
        else:
            req = self._running.pop(request_id, None)
            if req is None:
                return False
            self._release(req)
            if req.log.output_tokens > 0:
                # tokens of finished iterations, plus the one in flight (already counted
                # in stats.tokens_generated when the iteration began)
                this_run = self._tokens_this_run(req, in_flight=self._iterating)
                made = req.done_tokens + this_run
                if self.spec_decoding is not None:
                    # with speculative decoding, tokens are counted when a request ends
                    self.stats.tokens_generated += max(0, min(req.log.output_tokens, made))
                req.log.generated_tokens = max(0, min(req.log.output_tokens, made))
        kind = req.log.kind
        self.stats.aborted_tokens[kind] = (
            self.stats.aborted_tokens.get(kind, 0) + req.log.generated_tokens
        )
        now = self.now()
        req.log.outcome = "aborted"
        req.log.finished_at = now
        self.stats.aborted += 1
        if not req.future.done():
            req.future.set_exception(
                RequestCancelledError(f"request {request_id} was aborted on {self.name!r}")
            )
            req.future.exception()  # mark retrieved: nobody may be waiting any more
        return True

    def was_aborted(self, request_id: str) -> bool:
        """Whether a request with this id (or this id followed by "-") was aborted,
        among the requests `log` still holds."""
        return any(
            log.outcome == "aborted"
            and (log.request_id == request_id or log.request_id.startswith(request_id + "-"))
            for log in self.log
        )

    def load(self) -> EngineLoad:
        """Running and waiting counts and KV usage now."""
        return EngineLoad(
            running=len(self._running),
            waiting=len(self._waiting),
            kv_used_tokens=self._reserved,
            kv_capacity_tokens=self.profile.kv_capacity_tokens,
            cache_tokens=self._cache_tokens,
        )

    def in_flight(self) -> list[str]:
        """Ids of queued and running requests."""
        return [*self._waiting, *self._running]

    async def aclose(self) -> None:
        """Abort everything and stop the scheduler task (idempotent)."""
        self._closed = True
        for rid in list(self._waiting) + list(self._running):
            self.abort(rid)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    # ------------------------------------------------------------------ internals

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"sim-engine-{self.name}")

    def _enqueue(self, req: _Req) -> None:
        order = -req.log.priority if self.priority_scheduling else 0
        heapq.heappush(self._queue, (order, req.seq, req.log.request_id))

    def _release(self, req: _Req) -> None:
        self._reserved -= req.reserve
        if req.joined_step < self._step and req.log.output_tokens > 0:
            # counted as a decoder since the iteration after it joined
            self._decoders -= 1
            self._decode_prompt -= req.context0
            self._decode_joined -= req.joined_step + 1

    def _preempt_for(self, req: _Req, count_full: bool) -> list[_Req]:
        """Free running requests for `req` as SGLang's `preempt_to_schedule` does;
        returns them (empty when the rule does not allow enough)."""
        if self.preemption == "off" or not (count_full or self.preemption == "strict"):
            return []
        priority = req.log.priority
        candidates = sorted(
            (r for r in self._running.values() if r.joined_step < self._step),
            key=lambda r: (r.log.priority, -r.log.submitted_at, -r.seq),
        )
        need = self._reserved + req.reserve - self.profile.kv_capacity_tokens
        victims: list[_Req] = []
        for victim in candidates:
            if priority - victim.log.priority <= self.preemption_threshold:
                break
            victims.append(victim)
            need -= victim.reserve
            if need <= 0:
                break
        if not victims or need > 0:
            return []
        for victim in victims:
            del self._running[victim.log.request_id]
            self._release(victim)
            generated = self._tokens_this_run(victim, in_flight=False)
            victim.done_tokens = max(
                0, min(victim.log.output_tokens - 1, victim.done_tokens + generated)
            )
            victim.log.preempted += 1
            self.stats.preempted += 1
        return victims

    def _tokens_this_run(self, req: _Req, *, in_flight: bool) -> int:
        """Output tokens `req` made since it was last admitted (the iteration in flight
        included when `in_flight`)."""
        iterations = self._step - req.joined_step + (1 if in_flight else 0)
        remaining = req.log.output_tokens - req.done_tokens
        if self.spec_decoding is None:
            return max(0, min(remaining, iterations))
        return self.spec_decoding.tokens_after(iterations, remaining)

    def _cached_prefix(self, req: _Req) -> int:
        if not self.prefix_cache:
            return 0
        cached = 0
        for key, tokens in req.prefix:
            if key not in self._cache:
                break
            self._cache.move_to_end(key)
            cached = tokens
        return min(cached, req.log.prompt_tokens - 1)

    def _insert(self, key: Hashable, size: int) -> None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return
        self._cache[key] = max(0, size)
        self._cache_tokens += max(0, size)

    def _evict(self) -> None:
        budget = max(0, self.profile.kv_capacity_tokens - self._reserved)
        while self._cache_tokens > budget and self._cache:
            _, size = self._cache.popitem(last=False)
            self._cache_tokens -= size

    def _admit(self, now: float) -> tuple[list[_Req], int]:
        admitted: list[_Req] = []
        preempted: list[_Req] = []
        prefill = 0
        profile = self.profile
        while self._queue:
            order, _, rid = self._queue[0]
            req = self._waiting.get(rid)
            if req is None or (self.priority_scheduling and -order != req.log.priority):
                heapq.heappop(self._queue)  # aborted while queued, or a stale entry
                continue
            cached = self._cached_prefix(req)
            uncached = req.context0 - cached
            if admitted and prefill + uncached > profile.max_prefill_tokens:
                break
            count_full = len(self._running) >= profile.max_running_requests
            kv_short = self._reserved + req.reserve > profile.kv_capacity_tokens
            if count_full or kv_short:
                freed = self._preempt_for(req, count_full)
                if not freed:
                    break
                preempted.extend(freed)
            heapq.heappop(self._queue)
            del self._waiting[rid]
            prefill += uncached
            if req.log.started_at is None:
                req.log.cached_tokens = cached
                req.log.started_at = now
            req.joined_step = self._step
            remaining = req.log.output_tokens - req.done_tokens
            sd = self.spec_decoding
            iterations = sd.iterations_for(remaining) if sd else remaining
            req.finish_step = self._step + max(1, iterations)
            req.admission = next(self._admissions)
            self._running[rid] = req
            self._reserved += req.reserve
            heapq.heappush(self._finish_heap, (req.finish_step, req.admission, rid))
            if self.prefix_cache:
                previous = 0
                for key, tokens in req.prefix:
                    self._insert(key, tokens - previous)
                    previous = tokens
            admitted.append(req)
        for req in preempted:
            self._waiting[req.log.request_id] = req
            self._enqueue(req)
        if admitted:
            self._evict()
        return admitted, prefill

    async def _run(self) -> None:
        assert self._loop is not None and self._wake is not None
        loop, wake, profile, stats = self._loop, self._wake, self.profile, self.stats
        while True:
            if not self._running and not self._waiting:
                wake.clear()
                await wake.wait()
                continue
            now = loop.time()
            # decoders: requests that joined before this iteration (KV = prompt + generated)
            decoders = self._decoders
            generated = decoders * self._step - self._decode_joined + decoders
            sd = self.spec_decoding
            if sd is not None:
                generated = round(generated * sd.accept_length)
            context = self._decode_prompt + generated
            admitted, prefill = self._admit(now)
            if not admitted and decoders == 0:
                # waiting requests that can never be admitted while nothing runs
                wake.clear()
                await wake.wait()
                continue
            if sd is not None:
                dt = sd.iteration_time(profile, decoders, context, prefill)
            else:
                dt = profile.iteration_time(decoders, context, prefill)
            stats.iterations += 1
            stats.busy_time += dt
            stats.prefill_tokens += prefill
            stats.cached_tokens += sum(r.log.cached_tokens for r in admitted)
            if sd is None:
                stats.tokens_generated += decoders + sum(1 for r in admitted if r.log.output_tokens)
            batch = decoders + len(admitted)
            stats.batch_total += batch
            stats.max_batch = max(stats.max_batch, batch)
            self._iterating = True
            try:
                await asyncio.sleep(dt)
            finally:
                self._iterating = False
            self._step += 1
            for req in admitted:
                if req.log.output_tokens > 0 and req.log.request_id in self._running:
                    self._decoders += 1
                    self._decode_prompt += req.context0
                    self._decode_joined += req.joined_step + 1
            self._finish(loop.time())

    def _finish(self, now: float) -> None:
        heap = self._finish_heap
        while heap and heap[0][0] <= self._step:
            _, admission, rid = heapq.heappop(heap)
            req = self._running.get(rid)
            if req is None or req.admission != admission:  # aborted, pre-empted or id reused
                continue
            del self._running[rid]
            self._release(req)
            log = req.log
            log.finished_at = now
            log.outcome = "finished"
            log.generated_tokens = log.output_tokens
            if self.spec_decoding is not None:
                self.stats.tokens_generated += log.output_tokens
            self.stats.finished += 1
            self.stats.last_finish_at = now
            if self.prefix_cache and req.finish_key is not None:
                base = req.prefix[-1][1] if req.prefix else 0
                self._insert(req.finish_key, log.prompt_tokens + log.output_tokens - base)
            if not req.future.done():
                assert log.started_at is not None
                req.future.set_result(
                    SimResult(
                        rid,
                        log.prompt_tokens,
                        log.cached_tokens,
                        log.output_tokens,
                        log.submitted_at,
                        log.started_at,
                        now,
                    )
                )
        self._evict()
