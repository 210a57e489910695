"""GPU performance profiles: how long one engine iteration takes.

A profile is a small roofline model of one GPU serving one model with
continuous batching (SGLang-style). One iteration runs a prefill of the newly
admitted requests' uncached prompt tokens and one decode step of every running
request, and takes

    step_overhead_s + max(memory_time, compute_time)

    memory_time  = (weight_bytes + kv_bytes_per_token * context_tokens)
                   / (hbm_bandwidth * mem_efficiency)
    compute_time = flops_per_token * decode_batch  / (peak_flops * decode_mfu)
                 + flops_per_token * prefill_tokens / (peak_flops * prefill_mfu)

where `context_tokens` is the total KV the decode batch attends to and
`flops_per_token = 2 * params`. Small batches are bound by reading the weights
and KV cache from HBM, large prefills by FLOPs. Attention FLOPs and chunked
prefill are not modelled.

Sources (see /work/shared/SGLANG.md section 9 for the full citations):

- H100 SXM: 989.5 TFLOPS dense BF16, 3.35 TB/s HBM3, 80 GB; H200: same FLOPS,
  4.8 TB/s HBM3e, 141 GB (datacrunch.io, "DeepSeek-V3 ... H200 inference benchmarking").
- Decode anchor: SGLang Llama-3.1-8B on 1xH100 without speculative decoding,
  158.34 tok/s at batch 1 => 6.3 ms/token (sgl-project/sglang
  docs/advanced_features/speculative_decoding.md). With 16.06 GB of BF16 weights
  the bandwidth floor is 4.8 ms; `mem_efficiency=0.80` and `step_overhead_s=0.3 ms`
  reproduce 6.29 ms. Cross-check: NVIDIA NIM Llama-3.1-8B inter-token latency
  rises 4.63 -> 16.14 ms from 1 to 250 concurrent requests (46 us per extra
  sequence), which matches reading ~1k tokens x 128 KiB of KV per sequence at
  80% of 3.35 TB/s (49 us) (docs.nvidia.com/nim/benchmarking/llm, GPU header not
  captured: a cross-check, not a fit).
- Prefill: 2 x params FLOPs/token at 50% MFU => ~32k tok/s for a 7B model on an
  H100 (SGLANG.md derived figure ~30-40k at 50-65% MFU; consistent with
  TRT-LLM's prefill-bound FP8 2048/128 point of ~58-60k tok/s at twice the FLOPS).
- KV bytes/token: Qwen2.5(-Math)-7B 28 layers x 4 KV heads x 128 dims x 2 (K, V)
  x 2 bytes = 56 KiB; Llama-3.1-8B 128 KiB (huggingface.co/blog/llama31).
- KV capacity: SGLang mem_fraction_static ~0.88 of GPU memory minus ~15 GiB of
  weights, divided by KV bytes/token: ~1.0M tokens (Qwen-7B, 80 GB), ~2.0M
  (Qwen-7B, 141 GB), ~450k (Llama-8B, 80 GB).
- max_running_requests: SGLang default clamp(tokens/context_len*512, 2048, 4096)
  => 4096 for 4k-context Qwen2.5-Math, 2048 for 128k-context Llama-3.1
  (srt/mem_cache/kv_cache_configurator.py).
- max_prefill_tokens 16384: SGLang's `--max-prefill-tokens` default (ServerArgs;
  assumption, from memory of the server arguments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "H100_7B",
    "H100_8B",
    "H200_7B",
    "PROFILES",
    "GpuProfile",
    "calibrate",
    "kv_capacity_tokens",
]

GiB = 1024**3
KiB = 1024


def kv_capacity_tokens(
    gpu_memory_gib: float,
    kv_bytes_per_token: int,
    *,
    weights_gib: float = 15.0,
    mem_fraction_static: float = 0.88,
) -> int:
    """KV-cache tokens an SGLang server fits: (fraction x memory - weights) / bytes per token.

    Defaults follow SGLANG.md section 9 (mem_fraction_static 0.88, ~15 GiB of weights).
    """
    free = gpu_memory_gib * mem_fraction_static - weights_gib
    return max(0, int(free * GiB // kv_bytes_per_token))


@dataclass(frozen=True)
class GpuProfile:
    """One GPU serving one model: the constants of the iteration-time roofline.

    Attributes:
        name: readable name ("H100-SXM / Qwen2.5-Math-7B").
        hbm_bandwidth: peak HBM bandwidth, bytes/s.
        peak_flops: dense BF16 peak, FLOP/s.
        params: model parameters (FLOPs per token = 2 x params).
        weight_bytes: bytes of weights read once per iteration.
        kv_bytes_per_token: KV-cache bytes per token (all layers, K and V).
        kv_capacity_tokens: KV-cache pool size in tokens.
        max_running_requests: cap on the running batch.
        max_prefill_tokens: uncached prompt tokens admitted per iteration (at least
            one request is always admitted when it fits in memory).
        mem_efficiency: achieved fraction of `hbm_bandwidth` in decode.
        decode_mfu: achieved fraction of `peak_flops` in decode GEMMs.
        prefill_mfu: achieved fraction of `peak_flops` in prefill.
        step_overhead_s: fixed per-iteration cost (scheduling, launches, sampling).
    """

    name: str
    hbm_bandwidth: float
    peak_flops: float
    params: float
    weight_bytes: float
    kv_bytes_per_token: int
    kv_capacity_tokens: int
    max_running_requests: int
    max_prefill_tokens: int = 16384
    mem_efficiency: float = 0.80
    decode_mfu: float = 0.50
    prefill_mfu: float = 0.50
    step_overhead_s: float = 0.0003

    @property
    def flops_per_token(self) -> float:
        """Forward FLOPs per token (2 x params; attention ignored)."""
        return 2.0 * self.params

    @property
    def effective_bandwidth(self) -> float:
        """Bytes/s actually achieved in decode."""
        return self.hbm_bandwidth * self.mem_efficiency

    def memory_time(self, context_tokens: float) -> float:
        """Seconds to read the weights plus `context_tokens` of KV cache once."""
        return (self.weight_bytes + self.kv_bytes_per_token * context_tokens) / (
            self.effective_bandwidth
        )

    def compute_time(self, decode_batch: int, prefill_tokens: int = 0) -> float:
        """Seconds of matrix math for `decode_batch` decode tokens plus a prefill."""
        return self.flops_per_token * decode_batch / (
            self.peak_flops * self.decode_mfu
        ) + self.flops_per_token * prefill_tokens / (self.peak_flops * self.prefill_mfu)

    def iteration_time(
        self, decode_batch: int, context_tokens: float, prefill_tokens: int = 0
    ) -> float:
        """Seconds for one engine iteration (0.0 when there is nothing to do).

        Args:
            decode_batch: requests that decode one token this iteration.
            context_tokens: total KV tokens those requests attend to.
            prefill_tokens: uncached prompt tokens prefilled this iteration.
        """
        if decode_batch <= 0 and prefill_tokens <= 0:
            return 0.0
        return self.step_overhead_s + max(
            self.memory_time(context_tokens + prefill_tokens),
            self.compute_time(decode_batch, prefill_tokens),
        )

    def decode_step_time(self, batch_size: int, context_per_request: float = 1024.0) -> float:
        """One decode step of `batch_size` requests of `context_per_request` tokens each."""
        return self.iteration_time(batch_size, batch_size * context_per_request)

    def prefill_throughput(self) -> float:
        """Prefill tokens/s when compute-bound (at `prefill_mfu`)."""
        return self.peak_flops * self.prefill_mfu / self.flops_per_token


_H100_BW = 3.35e12
_H200_BW = 4.8e12
_PEAK_BF16 = 989.5e12
_QWEN7B_PARAMS = 7.62e9
_QWEN7B_KV = 56 * KiB
_LLAMA8B_PARAMS = 8.03e9
_LLAMA8B_KV = 128 * KiB

H100_7B = GpuProfile(
    name="H100-SXM-80GB / Qwen2.5-Math-7B (BF16)",
    hbm_bandwidth=_H100_BW,
    peak_flops=_PEAK_BF16,
    params=_QWEN7B_PARAMS,
    weight_bytes=2 * _QWEN7B_PARAMS,
    kv_bytes_per_token=_QWEN7B_KV,
    kv_capacity_tokens=kv_capacity_tokens(80, _QWEN7B_KV),
    max_running_requests=4096,
)
"""H100 SXM (3.35 TB/s, 989.5 TFLOPS BF16, 80 GB) serving Qwen2.5-Math-7B in BF16.

7.62B params (15.2 GB), 56 KiB KV/token, ~1.04M KV tokens, 4096 running requests;
bs=1 decode 5.98 ms/token; ~32k prefill tok/s. Sources: module docstring.
"""

H200_7B = replace(
    H100_7B,
    name="H200-141GB / Qwen2.5-Math-7B (BF16)",
    hbm_bandwidth=_H200_BW,
    kv_capacity_tokens=kv_capacity_tokens(141, _QWEN7B_KV),
)
"""H200 (4.8 TB/s, same FLOPS as H100, 141 GB) serving Qwen2.5-Math-7B in BF16.

~2.04M KV tokens; bs=1 decode 4.27 ms/token. Sources: module docstring.
"""

H100_8B = GpuProfile(
    name="H100-SXM-80GB / Llama-3.1-8B (BF16)",
    hbm_bandwidth=_H100_BW,
    peak_flops=_PEAK_BF16,
    params=_LLAMA8B_PARAMS,
    weight_bytes=2 * _LLAMA8B_PARAMS,
    kv_bytes_per_token=_LLAMA8B_KV,
    kv_capacity_tokens=kv_capacity_tokens(80, _LLAMA8B_KV),
    max_running_requests=2048,
)
"""H100 SXM serving Llama-3.1-8B in BF16: the profile the public anchors measure.

8.03B params (16.06 GB), 128 KiB KV/token, ~453k KV tokens, 2048 running requests;
bs=1 decode 6.29 ms/token (SGLang measured 6.3 ms). Sources: module docstring.
"""

PROFILES: dict[str, GpuProfile] = {"h100-7b": H100_7B, "h200-7b": H200_7B, "h100-8b": H100_8B}
"""Profiles by short name."""


def calibrate(
    trace: Sequence[tuple[float, float] | tuple[float, float, float]],
    base: GpuProfile = H100_7B,
    *,
    context_per_request: float = 1024.0,
) -> GpuProfile:
    """Fit `mem_efficiency` and `step_overhead_s` to decode steps timed on a real engine.

    Each trace entry is `(batch_size, step_seconds)` (every request is assumed to
    attend to `context_per_request` tokens) or `(batch_size, context_tokens_total,
    step_seconds)`. In the memory-bound regime a step takes

        t = step_overhead_s + (weight_bytes + kv_bytes_per_token * context) / (bw * eff)

    which is linear in x = weight_bytes + kv_bytes_per_token * context; ordinary least
    squares gives the slope 1/(bw*eff) and the intercept (the overhead, floored at 0).
    Keep compute-bound points (huge batches) out of the trace.

    Raises:
        ValueError: fewer than two distinct points, or a non-positive fitted slope.
    """
    xs: list[float] = []
    ys: list[float] = []
    for entry in trace:
        if len(entry) == 2:
            bs, t = entry[0], entry[1]
            context = bs * context_per_request
        else:
            bs, context, t = entry  # type: ignore[misc]
        xs.append(base.weight_bytes + base.kv_bytes_per_token * context)
        ys.append(float(t))
    n = len(xs)
    if n < 2:
        raise ValueError("calibrate needs at least two (batch_size, step_seconds) points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise ValueError("calibrate needs points with different batch sizes or contexts")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope <= 0 or not math.isfinite(slope):
        raise ValueError(f"fitted time per byte is {slope!r}; the trace is not memory-bound")
    overhead = max(0.0, my - slope * mx)
    efficiency = 1.0 / (slope * base.hbm_bandwidth)
    return replace(
        base,
        name=f"{base.name} (calibrated)",
        mem_efficiency=efficiency,
        step_overhead_s=overhead,
    )
