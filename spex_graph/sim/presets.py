"""Simulator presets: a workload, a policy GPU, a reward GPU and the search settings, each
number with its source.

- `artifact`: the paper's setting, as the SPEX artifact (PKU-SEC-Lab/SPEX) runs it:
  Llemma-metamath-7B policy (eager SGLang 0.1.14, no CUDA graphs) on one GPU and the
  Llemma-34B PRM on a second; REBASE softmax temperature 0.2, <= 256 tokens per step
  (hype-parameters/bfs.yaml), depth cap 25, ~75-token question prompts with no system
  prompt (bfs_async.py sends the bare problem text).
- `modern`: today's stack: a GQA 7B policy (Qwen2.5-Math-7B) and a 7B PRM
  (Qwen2.5-Math-PRM-7B), both with CUDA graphs, each on its own GPU; the same search
  settings and workload.
- `legacy`: the simulator's earlier workload (`MATH_LIKE`: normal step lengths, a
  shallow-confidence PRM) on Qwen2.5-Math-7B for both models; kept for the tests that
  pin its numbers. Its parameters are assumptions, not measurements.

The workload of `artifact` and `modern` (`PAPER_WORKLOAD`):

- Step lengths, measured: MATH-500 reference solutions (shared data, `solution`)
  split at paragraph and sentence breaks outside `$...$` and tokenized with the
  Llama-2 tokenizer give per-step tokens mean 55, median 35, p90 114, p99 303 (CV
  1.11): a lognormal with median ~38 and sigma ~0.8 (issue #8). Clipped to the
  artifact's `max_step_tokens: 256`.
- Split of that variance between a (problem, depth) component and a per-sibling one:
  fitted on real trees recorded on the embedded engine (`SHARED_FRACTION_FIT`,
  `spex_graph.sim.fit`): REBASE w8 on Qwen2.5-Coder-0.5B, 20 GSM8K + 20 MATH-500
  problems, 1,834 steps in 344 (problem, depth) groups (tests/fixtures/real_trees):
  shared fraction 0.20 (GSM8K 0.23, MATH-500 0.18), log-sd 0.76, median 48 tokens,
  cv 0.81 (MATH-500 alone: log-sd 0.79, close to the reference-solution lognormal).
- Solution depth, measured here: the same split of the 500 MATH-500 reference
  solutions gives steps per solution mean 4.06, median 3, p90 7, p99 15, max 44; its
  log has mean 1.144 and sd 0.717 => lognormal median 3.14, sigma 0.72, capped at the
  artifact's depth 25 (`spex_graph/sim/presets.py` docstring; rerun with
  `python -m spex_graph.sim.presets` to print them).
- Correctness chain and answers: `MATH_LIKE`'s assumptions (stays right 0.9 per
  step, recovers 0.03, 4 wrong answers, half of the wrong paths ending in a common
  distractor), with the first step right 0.65 x (1 - u) of the time for a
  per-problem difficulty u ~ U[0, 1) (some problems are out of reach), so that ~32%
  of sampled paths end correct: MetaMath-Llemma-7B solves 30.0% of MATH
  with one sample (Yu et al., 2023, "MetaMath", Table 3).
- PRM: Math-Shepherd-style: correct steps ~0.99 (logit 4.6, per-step noise 0.3),
  wrong steps broad and low (logit -1.4 +- 1.2: 90% between 0.03 and 0.65), one
  latent per path with sd 0.8 and correlation 0.9 per step. Centres follow
  peiyi9979/math-shepherd-mistral-7b-prm's model-card examples (correct ~0.99, wrong
  0.02-0.4); the spreads and the latent are assumptions. The PRM misses 30% of wrong
  steps (scores them like correct ones): assumed, in line with ProcessBench (Zheng et
  al., 2024), where Math-Shepherd-PRM-7B finds the first wrong step with an F1 of
  only ~30% on MATH-level problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from spex_graph.errors import ConfigError
from spex_graph.sim.profiles import (
    GpuProfile,
    llemma_7b,
    llemma_34b,
    qwen_math_7b,
    qwen_math_prm_7b,
)
from spex_graph.sim.workload import MATH_LIKE, SyntheticWorkload

__all__ = [
    "GPUS",
    "PAPER_WORKLOAD",
    "PRESETS",
    "SHARED_FRACTION_FIT",
    "SimPreset",
    "get_preset",
    "math500_depth_stats",
]

GPUS = ("h100", "h200")
"""GPU names `--gpu` accepts."""

SHARED_FRACTION_FIT: float | None = 0.20
"""Fraction of the log step-length variance shared per (problem, depth), fitted on
recorded real trees (`python -m spex_graph.sim.fit tests/fixtures/real_trees/*.gz`:
0.201 on 40 problems, 1,834 steps in 344 groups; GSM8K alone 0.23, MATH-500 alone
0.18; None would fall back to an assumed 0.5)."""

PAPER_WORKLOAD = replace(
    MATH_LIKE,
    p_correct_root=0.65,
    difficulty_spread=1.0,
    step_tokens_sigma=0.8,
    step_tokens_median=38.0,
    step_tokens_min=1,
    step_tokens_max=256,
    step_shared_fraction=SHARED_FRACTION_FIT if SHARED_FRACTION_FIT is not None else 0.5,
    depth_sigma=0.72,
    depth_median=3.14,
    depth_max=25,
    depth_jitter=0.1,
    prm_latent_sd=0.8,
    prm_latent_rho=0.9,
    prm_correct_logit=4.6,
    prm_step_sd=0.3,
    prm_wrong_logit=-1.4,
    prm_wrong_sd=1.2,
    prm_miss_rate=0.3,
    prompt_tokens=75,
)
"""The paper-calibrated workload (sources in the module docstring)."""


@dataclass(frozen=True)
class SimPreset:
    """One simulated setting.

    Attributes:
        name: the preset's name (`--preset`).
        description: one line for help and reports.
        workload: the synthetic reasoning tree.
        policy: the policy model's profile per GPU name.
        reward: the reward model's profile per GPU name.
        shared_engine: policy and reward on one GPU.
        max_depth: the search's depth cap.
        step_max_tokens: tokens per step cap (the request's max_tokens).
        temperature: REBASE's softmax temperature.
        sources: where the numbers come from (one line each).
    """

    name: str
    description: str
    workload: SyntheticWorkload
    policy: dict[str, GpuProfile]
    reward: dict[str, GpuProfile]
    shared_engine: bool = False
    max_depth: int = 25
    step_max_tokens: int = 256
    temperature: float = 0.2
    sources: tuple[str, ...] = field(default=())

    def profiles(self, gpu: str) -> tuple[GpuProfile, GpuProfile]:
        """(policy, reward) profiles on `gpu` (h100 or h200)."""
        key = gpu.lower()
        if key not in self.policy:
            raise ConfigError(f"unknown --gpu {gpu!r}; choose from {', '.join(GPUS)}")
        return self.policy[key], self.reward[key]


_ARTIFACT_SOURCES = (
    "PKU-SEC-Lab/SPEX README + scripts/run_policy.sh + scripts/run_reward.sh: "
    "Llemma-metamath-7B policy on GPU 0, Llemma PRM on GPU 1, tp 1, reward mem 0.85",
    "PKU-SEC-Lab/SPEX hype-parameters/bfs.yaml: softmax temperature 0.2, "
    "max_step_tokens 256, max_tokens 1024, width 8 (REBASE uses 16)",
    "EleutherAI llemma_7b / llemma_34b configs: 32 layers x 32 KV heads (512 KiB/token); "
    "48 layers x 8 KV heads (192 KiB/token)",
    "issue #8: eager SGLang 0.1.14 ~11-12 ms/token at batch 1 (assumed until measured)",
    "MATH-500 reference solutions: step tokens lognormal(38, 0.8); depth lognormal(3.14, 0.72)",
)

PRESETS: dict[str, SimPreset] = {
    "artifact": SimPreset(
        name="artifact",
        description="the paper's setting: Llemma-7B eager policy + Llemma-34B PRM, two GPUs",
        workload=PAPER_WORKLOAD,
        policy={g: llemma_7b(g) for g in GPUS},
        reward={g: llemma_34b(g) for g in GPUS},
        sources=_ARTIFACT_SOURCES,
    ),
    "modern": SimPreset(
        name="modern",
        description="today's stack: Qwen2.5-Math-7B + Qwen2.5-Math-PRM-7B, CUDA graphs, two GPUs",
        workload=PAPER_WORKLOAD,
        policy={g: qwen_math_7b(g) for g in GPUS},
        reward={g: qwen_math_prm_7b(g) for g in GPUS},
        sources=(
            *_ARTIFACT_SOURCES[1:2],
            *_ARTIFACT_SOURCES[4:],
            "SGLANG.md section 9: Qwen2.5-Math-7B 56 KiB KV/token, CUDA-graph decode ~6 ms",
        ),
    ),
    "legacy": SimPreset(
        name="legacy",
        description="the earlier assumed workload (MATH_LIKE) on Qwen2.5-Math-7B, two GPUs",
        workload=MATH_LIKE,
        policy={g: qwen_math_7b(g) for g in GPUS},
        reward={g: qwen_math_7b(g) for g in GPUS},
        max_depth=MATH_LIKE.deepest + 5,
        sources=("assumed (see spex_graph.sim.workload.MATH_LIKE)",),
    ),
}
"""Presets by name."""


def get_preset(name: str) -> SimPreset:
    """The preset called `name`, or a ConfigError naming the choices."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ConfigError(f"unknown --preset {name!r}; choose from {', '.join(PRESETS)}")
    return preset


def math500_depth_stats(path: str) -> dict[str, float]:
    """Steps per MATH-500 reference solution (paragraph and sentence breaks outside
    `$...$`): mean, median, p90, p99, max, and the log's mean and sd."""
    import json
    import statistics

    depths: list[int] = []
    with open(path) as fh:
        for line in fh:
            if line.strip():
                depths.append(len(split_solution_steps(json.loads(line)["solution"])))
    depths.sort()
    n = len(depths)
    logs = [math.log(d) for d in depths if d > 0]
    return {
        "mean": statistics.mean(depths),
        "median": depths[n // 2],
        "p90": depths[min(n - 1, int(0.9 * n))],
        "p99": depths[min(n - 1, int(0.99 * n))],
        "max": depths[-1],
        "log_mean": statistics.mean(logs),
        "log_sd": statistics.pstdev(logs),
    }


def split_solution_steps(solution: str) -> list[str]:
    """Split a solution at blank lines and at sentence ends outside `$...$`."""
    import re

    steps: list[str] = []
    for para in re.split(r"\n\s*\n", solution):
        current, in_math = "", False
        for j, ch in enumerate(para):
            current += ch
            if ch == "$":
                in_math = not in_math
            elif (
                not in_math and ch in ".!?" and (j + 1 == len(para) or para[j + 1] in " \n")
            ) and current.strip():
                steps.append(current.strip())
                current = ""
        if current.strip():
            steps.append(current.strip())
    return steps


if __name__ == "__main__":  # pragma: no cover - prints the measured depth figures
    import sys

    print(math500_depth_stats(sys.argv[1] if len(sys.argv) > 1 else "data/math500.jsonl"))
