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

The paper's setting (the `artifact` preset, `spex_graph.sim.presets`):

- Policy Llemma-metamath-7B, reward Llemma-34B PRM, each on its own GPU, tp 1;
  the reward server with `--mem-fraction-static 0.85` (PKU-SEC-Lab/SPEX README,
  scripts/run_policy.sh, scripts/run_reward.sh). The policy server passes no
  memory fraction: SGLang's tp-1 default, taken as 0.88 (SGLANG.md section 9).
- Llemma-7B = Code Llama 7B architecture: 6.74B parameters, 32 layers, 32 KV heads
  (no GQA) x 128 dims => 32 x 32 x 128 x 2 x 2 B = 512 KiB of KV per token
  (EleutherAI/llemma_7b config.json). Llemma-34B = Code Llama 34B: 33.7B
  parameters, 48 layers, 8 KV heads x 128 => 192 KiB per token (EleutherAI/
  llemma_34b config.json; issue #8 quotes both).
- Eager mode: the artifact's SGLang fork (thu-wyz/sglang `reward-model`, SGLang
  0.1.14 on vLLM 0.3.3) runs without CUDA graphs, ~11-12 ms per token at batch 1
  for the 7B (figure quoted in issue #8, not measured here: an assumption until a
  GPU run measures it). `step_overhead_s` = 6.5 ms reproduces 11.5 ms on an H100
  (5.0 ms of weight reads + 6.5 ms of launch overhead); the 34B's overhead is
  scaled by its layer count (48/32 => 9.75 ms).
- GPU memory as the driver reports it: H100 SXM 81,559 MiB (79.6 GiB), H200
  143,771 MiB (140.4 GiB) (nvidia-smi totals as commonly published; from memory,
  check on a real card). KV capacity follows: (fraction x memory - weights) /
  KV bytes per token.
- Qwen2.5-Math-PRM-7B (the `modern` preset's reward): Qwen2.5-Math-7B's backbone
  (28 layers, 4 KV heads: 56 KiB/token) with a 2-class head instead of the LM head:
  ~7.07B parameters (7.62B minus the 0.54B-parameter LM head; derived).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "GPU_MEMORY_GIB",
    "H100_7B",
    "H100_8B",
    "H200_7B",
    "PROFILES",
    "GpuProfile",
    "calibrate",
    "kv_capacity_tokens",
    "llemma_7b",
    "llemma_34b",
    "qwen_math_7b",
    "qwen_math_prm_7b",
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

GPU_MEMORY_GIB: dict[str, float] = {"h100": 81559 / 1024, "h200": 143771 / 1024}
"""Memory the driver reports per GPU, GiB (see the module docstring)."""
_BANDWIDTH = {"h100": _H100_BW, "h200": _H200_BW}
_GPU_NAME = {"h100": "H100-SXM-80GB", "h200": "H200-141GB"}
_EAGER_OVERHEAD_PER_LAYER = 0.0065 / 32
_CUDA_GRAPH_OVERHEAD = 0.0003


def _gpu(gpu: str) -> str:
    key = gpu.lower()
    if key not in _BANDWIDTH:
        raise ValueError(f"unknown GPU {gpu!r}; choose h100 or h200")
    return key


def _profile(
    gpu: str,
    model: str,
    *,
    params: float,
    kv_bytes: int,
    layers: int,
    eager: bool,
    mem_fraction: float,
    max_running: int,
) -> GpuProfile:
    key = _gpu(gpu)
    weights = 2 * params
    return GpuProfile(
        name=f"{_GPU_NAME[key]} / {model} (BF16{', eager' if eager else ''})",
        hbm_bandwidth=_BANDWIDTH[key],
        peak_flops=_PEAK_BF16,
        params=params,
        weight_bytes=weights,
        kv_bytes_per_token=kv_bytes,
        kv_capacity_tokens=kv_capacity_tokens(
            GPU_MEMORY_GIB[key],
            kv_bytes,
            weights_gib=weights / GiB,
            mem_fraction_static=mem_fraction,
        ),
        max_running_requests=max_running,
        step_overhead_s=layers * _EAGER_OVERHEAD_PER_LAYER if eager else _CUDA_GRAPH_OVERHEAD,
    )


def llemma_7b(gpu: str = "h100") -> GpuProfile:
    """Llemma-metamath-7B on one GPU, eager SGLang 0.1.14 (the artifact's policy).

    6.74B params, 512 KiB KV/token, mem fraction 0.88; H100: ~118k KV tokens,
    11.5 ms/token at batch 1. max_running_requests 4096 is assumed (the KV pool
    binds long before it). Sources: module docstring.
    """
    return _profile(
        gpu,
        "Llemma-7B",
        params=6.74e9,
        kv_bytes=512 * KiB,
        layers=32,
        eager=True,
        mem_fraction=0.88,
        max_running=4096,
    )


def llemma_34b(gpu: str = "h100") -> GpuProfile:
    """The Llemma-34B PRM on its own GPU, eager, `--mem-fraction-static 0.85` (the
    artifact's reward server). 33.7B params (62.8 GiB), 192 KiB KV/token; H100:
    ~27k KV tokens, ~36 ms per forward pass at small batch. Sources: module docstring.
    """
    return _profile(
        gpu,
        "Llemma-34B PRM",
        params=33.7e9,
        kv_bytes=192 * KiB,
        layers=48,
        eager=True,
        mem_fraction=0.85,
        max_running=4096,
    )


def qwen_math_7b(gpu: str = "h100") -> GpuProfile:
    """Qwen2.5-Math-7B with CUDA graphs (the `modern` policy): H100_7B / H200_7B's
    constants on the reported GPU memory. Sources: module docstring."""
    return _profile(
        gpu,
        "Qwen2.5-Math-7B",
        params=_QWEN7B_PARAMS,
        kv_bytes=_QWEN7B_KV,
        layers=28,
        eager=False,
        mem_fraction=0.88,
        max_running=4096,
    )


def qwen_math_prm_7b(gpu: str = "h100") -> GpuProfile:
    """Qwen2.5-Math-PRM-7B with CUDA graphs (the `modern` reward): ~7.07B params,
    56 KiB KV/token. Sources: module docstring."""
    return _profile(
        gpu,
        "Qwen2.5-Math-PRM-7B",
        params=7.07e9,
        kv_bytes=_QWEN7B_KV,
        layers=28,
        eager=False,
        mem_fraction=0.88,
        max_running=4096,
    )


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
