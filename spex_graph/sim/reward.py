"""`SimPRM`: a process reward model on a simulated engine.

Scoring a path is a prefill-only request (the PRM reads the question and the
path's steps; no tokens are generated) on the PRM's `SimEngine`. Steps the PRM
has already read for the parent are in its prefix cache, so in a search each
score mostly costs the newest step's tokens. Give the PRM its own engine to
model the paper's two-GPU setup, or the policy's engine to share one GPU.

The score is `clip(mean + noise, 0, 1)` with mean `reward_correct` or
`reward_wrong` by the hidden correctness of the newest step and noise
~ Normal(0, `prm_noise`), drawn deterministically from (problem, path text).
With `workload.prm_latent_sd > 0` it is the per-path-latent model instead (see
`spex_graph.sim.workload` and `latent_score`).
"""

from __future__ import annotations

import asyncio
import math
import random

from spex_graph.errors import BackendUnavailableError
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest
from spex_graph.sim.backend import prefix_keys, problem_key
from spex_graph.sim.engine import SimEngine
from spex_graph.sim.workload import SyntheticWorkload, parse_steps, stable_hash

__all__ = ["SimPRM", "latent_score"]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def latent_score(workload: SyntheticWorkload, problem_id: str, steps: list[str]) -> float:
    """The per-path-latent PRM score of the newest step of `steps` (deterministic).

    The latent starts ~ Normal(0, 1) at the first step and follows
    z' = rho z + sqrt(1 - rho^2) e down the path, e drawn from each step's salt, so
    siblings share their parent's latent and drift apart from there.
    """
    w = workload
    tags = [tag for step in steps for tag in parse_steps(step)]
    if not tags:
        return _sigmoid((w.prm_correct_logit + w.prm_wrong_logit) / 2)
    rho = min(1.0, max(0.0, w.prm_latent_rho))
    z = 0.0
    for i, tag in enumerate(tags):
        e = random.Random(stable_hash(w.seed, "latent", problem_id, tag.depth, tag.salt))
        draw = e.gauss(0.0, 1.0)
        z = draw if i == 0 else rho * z + math.sqrt(1.0 - rho * rho) * draw
    last = tags[-1]
    rng = random.Random(stable_hash(w.seed, "prm", problem_id, last.depth, last.salt))
    noise = rng.gauss(0.0, 1.0)
    missed = rng.random() < w.prm_miss_rate
    if last.ok or missed:
        logit = w.prm_correct_logit + w.prm_step_sd * noise
    else:
        logit = w.prm_wrong_logit + w.prm_wrong_sd * noise
    return _sigmoid(logit + w.prm_latent_sd * z)


class SimPRM:
    """A deterministic noisy PRM whose scoring costs engine time.

    Attributes:
        engine: the simulated GPU the PRM runs on.
        workload: the synthetic tree (reward means and noise).
        name: "sim-prm".
        calls: number of score requests received.
    """

    name = "sim-prm"

    def __init__(self, engine: SimEngine, workload: SyntheticWorkload) -> None:
        """A PRM scoring `workload`'s steps on `engine`."""
        self.engine = engine
        self.workload = workload
        self.calls = 0
        self._closed = False

    @property
    def capabilities(self) -> RewardCapabilities:
        """Abortable, costs engine time."""
        return RewardCapabilities(can_abort=True, uses_engine=True)

    def value(self, request: ScoreRequest) -> float:
        """The score alone, without engine time."""
        w = self.workload
        if w.prm_latent_sd > 0:
            return latent_score(w, problem_key(request.question), list(request.steps))
        tags = parse_steps(request.steps[-1]) if request.steps else []
        if tags:
            mean = w.reward_correct if tags[-1].ok else w.reward_wrong
        else:
            mean = (w.reward_correct + w.reward_wrong) / 2
        pid = problem_key(request.question)
        noise = random.Random(stable_hash(w.seed, "prm", pid, *request.steps)).gauss(
            0.0, w.prm_noise
        )
        return min(1.0, max(0.0, mean + noise))

    async def score(self, request: ScoreRequest) -> float:
        """Hold a prefill of the question + path on the engine, then return `value`."""
        if self._closed:
            raise BackendUnavailableError("the simulated PRM is closed; build a new one")
        self.calls += 1
        keys, tokens = prefix_keys(
            "prm", request.question, list(request.steps), self.workload.prompt_tokens, "\n\n"
        )
        await self.engine.generate(
            request.request_id, tokens, 0, prefix=keys, priority=1, kind="reward"
        )
        return self.value(request)

    async def cancel(self, request_id: str) -> None:
        """Abort the scoring request on the engine."""
        self.engine.abort(request_id)

    async def aclose(self) -> None:
        """Refuse new requests."""
        self._closed = True
        await asyncio.sleep(0)
