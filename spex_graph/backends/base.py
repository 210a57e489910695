"""The backend protocol: what a search needs from an LLM runtime.

A backend generates continuations of a text prefix. Every request carries
its own seeds (one per sample) and its own id, so that a speculative
expansion produces exactly the text the primary one would, and so that a
request in flight can be aborted on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from spex_graph.backends.load import EngineLoad


GPU_BATCH_COST = 0.005
"""`batch_cost` of a GPU serving engine: NIM's Llama-3.1-8B inter-token latency grows
from 4.63 ms at concurrency 1 to 5.19 ms at 25, i.e. (5.19 / 4.63 - 1) / 24 = 0.005 per
extra sequence (docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance; see
shared/SGLANG.md section 9)."""


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend can do; the dispatcher and policies adapt to it.

    Attributes:
        can_abort: `cancel(request_id)` stops the work on the engine, not just locally.
        seeded: per-request seeds give reproducible samples.
        logprobs: completions can carry token logprobs.
        shares_prefix_cache: siblings sharing a prefix reuse its KV cache.
        max_concurrency: how many requests the engine usefully runs at once.
        batch_cost: what one more concurrent sequence adds to the time of a decode
            step, as a fraction of a one-sequence step: 0 = batching is free (a GPU
            serving engine), 1 = sequences run one after another. None = unknown.
            `SpexConfig.auto` speculates only where this is nearly 0.
        free_batch: the decode batch (running sequences) up to which one more
            sequence costs a step little more than its KV read (the memory-bound side
            of the roofline); beyond it every sequence adds compute to every step, so
            the budget keeps speculation below it. Token-level speculative decoding
            verifies several draft tokens per sequence per step and moves it down a
            lot (modern 8B on an H100: 640 plain, 26 with EAGLE-3). None = unknown.
        speculative_decoding: the engine runs token-level speculative decoding
            (EAGLE and the like): it generates a few times faster per sequence, so
            the reward engine beside it is the bottleneck more often.
        can_promote: the backend has `promote(request_id, priority)` (`Promotable`),
            which raises a request still queued (client-side or on the engine).
        reports_load: the backend has `load()` (`LoadReporting`), an `EngineLoad`
            snapshot of the engine's queue, running requests and KV use.
        counts_aborted_tokens: the backend has `aborted_tokens()` (`AbortAccounting`),
            the tokens its engine generated for requests whose results it dropped.
    """

    can_abort: bool = False
    seeded: bool = False
    logprobs: bool = False
    shares_prefix_cache: bool = False
    max_concurrency: int = 1
    batch_cost: float | None = None
    free_batch: int | None = None
    speculative_decoding: bool = False
    can_promote: bool = False
    reports_load: bool = False
    counts_aborted_tokens: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """Generate `len(seeds)` continuations of `prompt`.

    Attributes:
        prompt: the full text prefix (chat template already applied).
        seeds: one sampling seed per continuation; n = len(seeds).
        request_id: unique id; continuation i runs as `f"{request_id}-{i:04d}"`
            on engines that need one id per sequence (fixed width, so no id
            is a prefix of another).
        stop: stop strings; the stop string itself is not included in the text.
        max_tokens: cap on generated tokens per continuation.
        temperature, top_p: sampling parameters.
        logprobs: ask for per-token logprobs of the generated tokens.
        priority: higher runs first where the engine supports priorities.
        messages: the same prompt as chat messages ((role, content) pairs) for
            chat-only backends; `prompt` == chat template(messages) + assistant_prefix.
        assistant_prefix: the assistant's partial answer so far (the path's steps).
    """

    prompt: str
    seeds: tuple[int, ...]
    request_id: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    logprobs: bool = False
    priority: int = 0
    messages: tuple[tuple[str, str], ...] = ()
    assistant_prefix: str = ""
    top_logprobs: int = 0
    """Also return the top_logprobs most likely tokens at each generated position (0 = none)."""

    @property
    def n(self) -> int:
        """Number of continuations asked for."""
        return len(self.seeds)


@dataclass(frozen=True)
class Completion:
    """One generated continuation.

    Attributes:
        text: generated text, without the matched stop string.
        finish_reason: "stop" (a stop string or EOS), "length" or "abort".
        prompt_tokens: tokens in the prompt as the engine counted them.
        completion_tokens: generated tokens.
        cached_tokens: prompt tokens served from the prefix cache, if known.
        stop_matched: the stop string that ended generation, if any.
        token_logprobs: logprob of each generated token, when asked for.
    """

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    stop_matched: str | None = None
    token_logprobs: tuple[float, ...] = field(default=())
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = ()
    """Per generated position, the most likely (token text, logprob) pairs, best first."""


@runtime_checkable
class Backend(Protocol):
    """An LLM runtime that generates continuations (SGLang, OpenAI-compatible, embedded...).

    `name` (for messages and traces) and `capabilities` are read-only.
    """

    @property
    def name(self) -> str:
        """Short name for messages and traces."""
        ...

    @property
    def capabilities(self) -> BackendCapabilities:
        """What this backend can do."""
        ...

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Return one completion per seed, in seed order.

        Raises BackendUnavailableError when the engine cannot be reached,
        BackendRequestError on an error answer, RequestCancelledError when
        the request was cancelled.
        """
        ...

    async def cancel(self, request_id: str) -> None:
        """Abort a request in flight (all its continuations). Unknown ids are ignored."""
        ...

    async def health(self) -> None:
        """Raise BackendUnavailableError (one line, naming the fix) if the engine is not usable."""
        ...

    async def aclose(self) -> None:
        """Release connections, subprocesses and other resources."""
        ...


@runtime_checkable
class Promotable(Protocol):
    """A backend (or reward model) that can raise the priority of a queued request.

    Advertised by `capabilities.can_promote`. The dispatcher calls it when a
    primary request joins a speculative one that has not started yet.
    """

    async def promote(self, request_id: str, priority: int) -> None:
        """Raise `request_id` (all its continuations) to at least `priority`."""
        ...


@runtime_checkable
class LoadReporting(Protocol):
    """A backend (or reward model) that reports its engine's load (`capabilities.reports_load`)."""

    async def load(self) -> EngineLoad | None:
        """The engine's load now, or None when the engine does not say."""
        ...


@runtime_checkable
class AbortAccounting(Protocol):
    """A backend that counts the tokens its engine generated for nothing
    (`capabilities.counts_aborted_tokens`).

    Those are the tokens of requests whose results `generate` never returned:
    cancelled, aborted on the engine, or dropped because a sibling continuation
    failed. Benchmarks add them to the waste (`spex bench`: `tokens_aborted`).
    """

    async def aborted_tokens(self) -> int:
        """Such tokens since the backend was created, once the aborts still on their
        way have answered (waits at most a few seconds)."""
        ...
