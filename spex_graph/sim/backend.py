"""`SimBackend`: the Backend protocol over a simulated engine and a synthetic workload.

For each seed the backend works out the continuation the synthetic policy
would write (`SyntheticWorkload.continuation` from the parent step parsed out
of `request.assistant_prefix`), applies the stop strings and `max_tokens` to
that text exactly like an engine would, and then holds the request on the
`SimEngine` for as many output tokens as the kept text is worth. Tokens are
spread uniformly over each step's characters, so a cut inside a step costs a
proportional share of it; the delimiter between steps costs nothing.

With the task's delimiter as stop string a request yields one step
(`stop_matched` = the delimiter), or the final step (`stop_matched` None, as
on end-of-sequence). With no stop strings (`until_end`) it yields every
remaining step joined by the delimiter. Prompts without a `[sim problem=...]`
tag (another task, the conformance suite) are treated as a problem named by a
hash of the prompt.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable, Iterable
from typing import Protocol

from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.load import EngineLoad
from spex_graph.errors import BackendUnavailableError
from spex_graph.sim.engine import SimEngine
from spex_graph.sim.profiles import GpuProfile
from spex_graph.sim.spec_decoding import SpecDecoding
from spex_graph.sim.workload import (
    SimStep,
    parse_problem_id,
    parse_steps,
    stable_hash,
)

__all__ = ["SimBackend", "StepSource", "problem_key", "step_token_count"]


class StepSource(Protocol):
    """What `SimBackend` needs from a workload: prompt size and the steps below a parent."""

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the chat template + question."""
        ...

    def continuation(
        self, problem_id: str, parent: SimStep | None, seed: int, max_steps: int = 64
    ) -> Iterable[SimStep]:
        """Steps from below `parent` to the answer."""
        ...


def problem_key(text: str) -> str:
    """The problem id tagged in `text`, else a stable hash of it."""
    pid = parse_problem_id(text)
    return pid if pid is not None else f"h{stable_hash(text) & 0xFFFFFFFF:08x}"


def step_token_count(step_text: str) -> int:
    """Tokens of a step: the sum of its tags' `n`, else ~4 characters per token."""
    tags = parse_steps(step_text)
    if tags:
        return sum(t.tokens for t in tags)
    return max(1, len(step_text) // 4) if step_text else 0


def _split_prefix(prompt: str, assistant_prefix: str, delimiter: str) -> tuple[str, list[str]]:
    """The prompt's head (chat template + question) and the path's step texts."""
    if assistant_prefix and prompt.endswith(assistant_prefix):
        head = prompt[: len(prompt) - len(assistant_prefix)]
        steps = [s for s in assistant_prefix.split(delimiter) if s]
        return head, steps
    return prompt, []


def prefix_keys(
    namespace: str, head: str, steps: list[str], base_tokens: int, delimiter: str
) -> tuple[list[tuple[Hashable, int]], int]:
    """Prefix-cache keys at every step boundary of a prompt, and the prompt's tokens."""
    keys: list[tuple[Hashable, int]] = []
    text = head
    tokens = base_tokens
    keys.append(((namespace, hash(text)), tokens))
    for step in steps:
        text += step + delimiter
        tokens += step_token_count(step)
        keys.append(((namespace, hash(text)), tokens))
    return keys, tokens


class SimBackend:
    """A seeded, abortable policy backend on a `SimEngine`.

    Attributes:
        engine: the simulated GPU the policy runs on.
        workload: the synthetic reasoning tree.
        delimiter: the step delimiter placed between steps of a multi-step continuation.
        name: "sim".
    """

    name = "sim"

    def __init__(self, engine: SimEngine, workload: StepSource, *, delimiter: str = "\n\n") -> None:
        """A backend generating `workload`'s steps on `engine`."""
        self.engine = engine
        self.workload = workload
        self.delimiter = delimiter
        self._active: dict[str, list[str]] = {}
        self._closed = False

    @property
    def capabilities(self) -> BackendCapabilities:
        """Aborts, seeds, logprobs and a shared prefix cache; concurrency from the profile."""
        return BackendCapabilities(
            can_abort=True,
            seeded=True,
            logprobs=True,
            shares_prefix_cache=self.engine.prefix_cache,
            max_concurrency=self.engine.profile.max_running_requests,
            batch_cost=batch_cost(self.engine.profile),
            free_batch=free_batch(self.engine.profile, self.engine.spec_decoding),
            speculative_decoding=self.engine.spec_decoding is not None,
            can_promote=True,
            reports_load=True,
        )

    async def promote(self, request_id: str, priority: int) -> None:
        """Raise the request's continuations to `priority` on the engine."""
        for rid in self._active.get(request_id, ()):
            self.engine.promote(rid, priority)

    def continuation(
        self, request: GenerationRequest, seed: int
    ) -> tuple[Completion, list[tuple[Hashable, int]], Hashable]:
        """The completion for one seed (timing aside), its prefix keys and finish key."""
        pid = problem_key(request.prompt)
        head, steps = _split_prefix(request.prompt, request.assistant_prefix, self.delimiter)
        parsed = parse_steps(request.assistant_prefix)
        parent: SimStep | None = parsed[-1] if parsed else None
        keys, prompt_tokens = prefix_keys(
            "policy", head, steps, self.workload.prompt_tokens, self.delimiter
        )
        text, tokens, finish, matched = self._cut(request, pid, parent, seed)
        completion = Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=tokens,
            stop_matched=matched,
            token_logprobs=_logprobs(seed, tokens) if request.logprobs else (),
        )
        finish_key = ("policy", hash(request.prompt + text + (matched or "")))
        return completion, keys, finish_key

    def _cut(
        self, request: GenerationRequest, pid: str, parent: SimStep | None, seed: int
    ) -> tuple[str, int, str, str | None]:
        """Generate step by step until a stop string, max_tokens or the answer."""
        pieces: list[tuple[str, int]] = []  # (text, tokens) segments; delimiters cost 0
        text = ""
        total = 0
        stops = [s for s in request.stop if s]
        for step in self.workload.continuation(pid, parent, seed):
            if pieces:
                pieces.append((self.delimiter, 0))
                text += self.delimiter
            rendered = step.render()
            pieces.append((rendered, step.tokens))
            text += rendered
            total += step.tokens
            hit = min(((text.find(s), s) for s in stops if s in text), default=None)
            if hit is not None:
                kept = text[: hit[0]]
                used = _tokens_upto(pieces, hit[0])
                if used <= request.max_tokens:
                    return kept, max(1, used), "stop", hit[1]
            if total > request.max_tokens or hit is not None:
                cut = _chars_for(pieces, request.max_tokens)
                return text[:cut], request.max_tokens, "length", None
        return text, max(1, total), "stop", None

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """One completion per seed, after the engine has "generated" it."""
        if self._closed:
            raise BackendUnavailableError("the simulated backend is closed; build a new one")
        if not request.seeds:
            return []
        ids = (
            [request.request_id]
            if request.n == 1
            else [f"{request.request_id}-{i:04d}" for i in range(request.n)]
        )
        self._active[request.request_id] = ids
        jobs = []
        plans = []
        for rid, seed in zip(ids, request.seeds, strict=True):
            completion, keys, finish_key = self.continuation(request, seed)
            plans.append(completion)
            jobs.append(
                self.engine.generate(
                    rid,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    prefix=keys,
                    finish_key=finish_key,
                    priority=request.priority,
                    kind="policy",
                )
            )
        tasks = [asyncio.ensure_future(j) for j in jobs]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for rid in ids:
                self.engine.abort(rid)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._active.pop(request.request_id, None)
        return [
            Completion(
                text=c.text,
                finish_reason=c.finish_reason,
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                cached_tokens=r.cached_tokens,
                stop_matched=c.stop_matched,
                token_logprobs=c.token_logprobs,
            )
            for c, r in zip(plans, results, strict=True)
        ]

    async def cancel(self, request_id: str) -> None:
        """Abort the request's continuations on the engine; unknown ids are ignored."""
        for rid in self._active.get(request_id, ()):
            self.engine.abort(rid)

    async def load(self) -> EngineLoad:
        """The engine's load, in the shape SGLang's `/v1/loads` gives the budget controller."""
        return engine_load(self.engine)

    async def health(self) -> None:
        """Raise BackendUnavailableError when closed."""
        if self._closed:
            raise BackendUnavailableError("the simulated backend is closed; build a new one")

    async def aclose(self) -> None:
        """Abort this backend's requests and refuse new ones (the engine stays up)."""
        self._closed = True
        for ids in list(self._active.values()):
            for rid in ids:
                self.engine.abort(rid)


def engine_load(engine: SimEngine) -> EngineLoad:
    """A simulated engine's load as an `EngineLoad` (SGLang `/v1/loads` fields in `raw`)."""
    snap = engine.load()
    return EngineLoad(
        running=snap.running,
        waiting=snap.waiting,
        token_usage=snap.kv_usage,
        raw={
            "num_running_reqs": snap.running,
            "num_waiting_reqs": snap.waiting,
            "num_used_tokens": snap.kv_used_tokens,
            "max_total_num_tokens": snap.kv_capacity_tokens,
            "max_running_requests": engine.profile.max_running_requests,
        },
    )


def free_batch(
    profile: GpuProfile, spec_decoding: SpecDecoding | None = None, context: float = 1024.0
) -> int:
    """The decode batch at which a step on `profile` turns compute-bound
    (`BackendCapabilities.free_batch`): the knee of its roofline, where the compute for
    the batch's tokens (`draft_tokens` per sequence with speculative decoding) meets
    the time to read the weights and every sequence's `context` tokens of KV."""
    per_sequence = spec_decoding.draft_tokens if spec_decoding is not None else 1
    low, high = 1, profile.max_running_requests
    while low < high:  # compute grows faster than memory in b: bisect the crossing
        mid = (low + high) // 2
        if profile.compute_time(mid * per_sequence) < profile.memory_time(mid * context):
            low = mid + 1
        else:
            high = mid
    return low


def batch_cost(profile: GpuProfile, context: float = 1024.0) -> float:
    """What one more decoding sequence adds to a one-sequence decode step on `profile`
    (`BackendCapabilities.batch_cost`), from the profile's own step-time model."""
    one = profile.decode_step_time(1, context)
    return profile.decode_step_time(2, context) / one - 1.0 if one > 0 else 0.0


def _tokens_upto(pieces: list[tuple[str, int]], chars: int) -> int:
    """Tokens of the first `chars` characters of the concatenated pieces."""
    used, pos = 0, 0
    for text, tokens in pieces:
        if pos + len(text) <= chars:
            used += tokens
        else:
            if text and chars > pos:
                used += math.ceil(tokens * (chars - pos) / len(text))
            break
        pos += len(text)
    return used


def _chars_for(pieces: list[tuple[str, int]], max_tokens: int) -> int:
    """Characters of the concatenated pieces worth `max_tokens` tokens."""
    used, pos = 0, 0
    for text, tokens in pieces:
        if used + tokens <= max_tokens:
            used += tokens
            pos += len(text)
            continue
        return pos + (len(text) * (max_tokens - used)) // max(1, tokens)
    return pos


def _logprobs(seed: int, n: int) -> tuple[float, ...]:
    """Deterministic fake token logprobs (all <= 0)."""
    base = (stable_hash("lp", seed) % 1000) / 1000.0
    return tuple(-0.05 - 0.5 * ((base + 0.618 * i) % 1.0) for i in range(n))
