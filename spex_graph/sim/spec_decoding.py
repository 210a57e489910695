"""Token-level speculative decoding (EAGLE-style) in the simulated engine's step time.

With speculative decoding every decode iteration first runs `draft_steps` passes of a
small draft head, then one verify pass of the target model over `draft_tokens`
candidate tokens per request, and each request keeps `accept_length` tokens on
average (accepted drafts plus the target's own token). So an iteration takes

    draft_time + step_overhead + max(memory_time(KV), compute_time(batch x draft_tokens))

and yields `accept_length` tokens per request instead of one. At batch 1 the verify
pass is as memory-bound as a plain decode step and the gain is
accept_length / (1 + draft_time / step); at large batch the verify's compute
(`draft_tokens` tokens per request) makes the step compute-bound and the gain
shrinks, then turns into a loss: the "shrinking benefit at large batch".

Calibration: `draft_time` is set so that the batch-1 speedup equals a measured one:
SGLang's docs (docs/advanced_features/speculative_decoding.md @067ad4d; SGLANG.md
section 8) measure Llama-3.1-8B on one H100, MT-bench: 158.34 tok/s without, 244.10
with EAGLE-2 (1.54x) and 373.25 with EAGLE-3 (2.36x), with SGLang's defaults
(`--speculative-num-steps` 5 for Llama, `--speculative-eagle-topk` 4,
`--speculative-num-draft-tokens` 8). The acceptance lengths are assumptions
(EAGLE-2: 3.0, EAGLE-3: 4.0 tokens per verify step; the EAGLE-2/-3 papers report
~4-6 on chat benchmarks with larger draft trees); given a speedup, a longer
acceptance only means a costlier draft, so the batch-1 gain holds either way and
the assumption moves only where the benefit fades with batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spex_graph.errors import ConfigError
from spex_graph.sim.profiles import GpuProfile

__all__ = ["SPEC_DECODING", "SpecDecoding", "get_spec_decoding"]


@dataclass(frozen=True)
class SpecDecoding:
    """An EAGLE-style speculative decoding setting.

    Attributes:
        name: "eagle2" or "eagle3".
        accept_length: mean tokens a request keeps per verify step (>= 1).
        draft_tokens: candidate tokens verified per request per step.
        batch1_speedup: measured decode speedup at batch 1 (calibrates the draft cost).
        sglang_flags: the server flags that turn it on (for launch scripts).
    """

    name: str
    accept_length: float
    draft_tokens: int
    batch1_speedup: float
    sglang_flags: tuple[str, ...]

    def draft_time(self, profile: GpuProfile) -> float:
        """Seconds of drafting per iteration, so that batch 1 gains `batch1_speedup`."""
        step = profile.decode_step_time(1)
        return max(0.0, step * (self.accept_length / self.batch1_speedup - 1.0))

    def iteration_time(
        self, profile: GpuProfile, decode_batch: int, context_tokens: float, prefill_tokens: int
    ) -> float:
        """One engine iteration with drafting and verification (0.0 when idle)."""
        if decode_batch <= 0:
            return profile.iteration_time(0, context_tokens, prefill_tokens)
        return (
            self.draft_time(profile)
            + profile.step_overhead_s
            + max(
                profile.memory_time(context_tokens + prefill_tokens),
                profile.compute_time(decode_batch * self.draft_tokens, prefill_tokens),
            )
        )

    def iterations_for(self, tokens: int) -> int:
        """Decode iterations a request of `tokens` output tokens needs (first one included)."""
        return max(1, math.ceil(tokens / self.accept_length))

    def tokens_after(self, iterations: int, tokens: int) -> int:
        """Output tokens produced after `iterations` iterations (capped at `tokens`)."""
        return min(tokens, math.floor(iterations * self.accept_length))


SPEC_DECODING: dict[str, SpecDecoding] = {
    "eagle2": SpecDecoding(
        "eagle2",
        accept_length=3.0,
        draft_tokens=8,
        batch1_speedup=244.10 / 158.34,
        sglang_flags=(
            "--speculative-algorithm", "EAGLE", "--speculative-num-steps", "5",
            "--speculative-eagle-topk", "4", "--speculative-num-draft-tokens", "8",
        ),
    ),
    "eagle3": SpecDecoding(
        "eagle3",
        accept_length=4.0,
        draft_tokens=8,
        batch1_speedup=373.25 / 158.34,
        sglang_flags=(
            "--speculative-algorithm", "EAGLE3", "--speculative-num-steps", "5",
            "--speculative-eagle-topk", "4", "--speculative-num-draft-tokens", "8",
        ),
    ),
}  # fmt: skip
"""Settings by name (sources in the module docstring)."""


def get_spec_decoding(name: str) -> SpecDecoding:
    """The setting called `name`, or a one-line ConfigError naming the choices."""
    found = SPEC_DECODING.get(name.lower())
    if found is None:
        raise ConfigError(
            f"unknown --spec-decoding {name!r}; choose from {', '.join(SPEC_DECODING)}"
        )
    return found
