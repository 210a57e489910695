"""Record a search on a real engine; replay it under a GPU profile.

`RecordingBackend` / `RecordingReward` wrap any backend / reward model and
note every completion (by sampling seed: the seed derives from the query and
the node path, so it names the node) and every reward (by question + path).
`Recording.save` writes JSON. `ReplayBackend` / `ReplayReward` then serve
exactly those texts, token counts and rewards, taking the time a `SimEngine`
with the chosen profile would take. A replayed search asking for a node the
recording never saw (e.g. a speculative branch the recorded run did not
explore) fails with a one-line error: record with the same algorithm, width
and seed, and with speculation on if the replay uses it.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spex_graph.backends.base import Backend, BackendCapabilities, Completion, GenerationRequest
from spex_graph.errors import BackendRequestError
from spex_graph.rewards.base import RewardCapabilities, RewardModel, ScoreRequest
from spex_graph.sim.backend import _split_prefix
from spex_graph.sim.engine import SimEngine
from spex_graph.sim.workload import stable_hash

__all__ = ["Recording", "RecordingBackend", "RecordingReward", "ReplayBackend", "ReplayReward"]


def _reward_key(request: ScoreRequest) -> str:
    return f"{stable_hash(request.question, *request.steps):016x}"


@dataclass
class Recording:
    """Completions by seed and rewards by path, as plain JSON data.

    Attributes:
        completions: str(seed) -> {text, finish_reason, prompt_tokens, completion_tokens,
            stop_matched}.
        rewards: path key -> reward.
        meta: free-form notes (engine, model, date).
    """

    completions: dict[str, dict[str, Any]] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        """Write the recording as JSON."""
        data = {"completions": self.completions, "rewards": self.rewards, "meta": self.meta}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a recording written by `save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["completions"], data["rewards"], data.get("meta", {}))

    def step_tokens(self) -> dict[str, int]:
        """Token count of every recorded text (to size prefix-cache entries)."""
        return {c["text"].strip(): int(c["completion_tokens"]) for c in self.completions.values()}


class RecordingBackend:
    """Wraps a backend and records every completion into `recording`."""

    def __init__(self, inner: Backend, recording: Recording | None = None) -> None:
        """Record `inner`'s completions."""
        self.inner = inner
        self.recording = recording if recording is not None else Recording()

    @property
    def name(self) -> str:
        """The wrapped backend's name."""
        return self.inner.name

    @property
    def capabilities(self) -> BackendCapabilities:
        """The wrapped backend's capabilities."""
        return self.inner.capabilities

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Generate on the wrapped backend and record each completion by seed."""
        out = await self.inner.generate(request)
        for seed, c in zip(request.seeds, out, strict=True):
            self.recording.completions[str(seed)] = {
                "text": c.text,
                "finish_reason": c.finish_reason,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "stop_matched": c.stop_matched,
            }
        return out

    async def cancel(self, request_id: str) -> None:
        """Forward."""
        await self.inner.cancel(request_id)

    async def health(self) -> None:
        """Forward."""
        await self.inner.health()

    async def aclose(self) -> None:
        """Forward."""
        await self.inner.aclose()


class RecordingReward:
    """Wraps a reward model and records every reward into `recording`."""

    def __init__(self, inner: RewardModel, recording: Recording | None = None) -> None:
        """Record `inner`'s rewards."""
        self.inner = inner
        self.recording = recording if recording is not None else Recording()

    @property
    def name(self) -> str:
        """The wrapped reward model's name."""
        return self.inner.name

    @property
    def capabilities(self) -> RewardCapabilities:
        """The wrapped reward model's capabilities."""
        return self.inner.capabilities

    async def score(self, request: ScoreRequest) -> float:
        """Score on the wrapped model and record the value."""
        value = await self.inner.score(request)
        self.recording.rewards[_reward_key(request)] = float(value)
        return value

    async def cancel(self, request_id: str) -> None:
        """Forward."""
        await self.inner.cancel(request_id)

    async def aclose(self) -> None:
        """Forward."""
        await self.inner.aclose()


def _keys(
    namespace: str, head: str, steps: list[str], total: int, sizes: dict[str, int], delim: str
) -> list[tuple[Hashable, int]]:
    step_sizes = [sizes.get(s.strip(), max(1, len(s) // 4)) for s in steps]
    tokens = max(1, total - sum(step_sizes))
    text = head
    keys: list[tuple[Hashable, int]] = [((namespace, hash(text)), tokens)]
    for step, size in zip(steps, step_sizes, strict=True):
        text += step + delim
        tokens += size
        keys.append(((namespace, hash(text)), min(tokens, total)))
    return keys


class ReplayBackend:
    """Serves a recording's completions with simulated engine timing."""

    name = "replay"

    def __init__(self, engine: SimEngine, recording: Recording, delimiter: str = "\n\n") -> None:
        """Replay `recording` on `engine`."""
        self.engine = engine
        self.recording = recording
        self.delimiter = delimiter
        self._sizes = recording.step_tokens()

    @property
    def capabilities(self) -> BackendCapabilities:
        """Seeded (the recording), abortable (the engine)."""
        return BackendCapabilities(
            can_abort=True,
            seeded=True,
            shares_prefix_cache=self.engine.prefix_cache,
            max_concurrency=self.engine.profile.max_running_requests,
        )

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """The recorded completion of each seed, after simulated generation time."""
        out: list[Completion] = []
        for i, seed in enumerate(request.seeds):
            rec = self.recording.completions.get(str(seed))
            if rec is None:
                raise BackendRequestError(
                    f"seed {seed} is not in the recording; record with the same "
                    "algorithm, width, seed and speculation settings"
                )
            rid = request.request_id if request.n == 1 else f"{request.request_id}-{i:04d}"
            head, steps = _split_prefix(request.prompt, request.assistant_prefix, self.delimiter)
            prompt_tokens = int(rec["prompt_tokens"]) or 1
            keys = _keys("policy", head, steps, prompt_tokens, self._sizes, self.delimiter)
            result = await self.engine.generate(
                rid,
                prompt_tokens,
                int(rec["completion_tokens"]),
                prefix=keys,
                finish_key=(
                    "policy",
                    hash(request.prompt + rec["text"] + (rec["stop_matched"] or "")),
                ),
                priority=request.priority,
            )
            out.append(
                Completion(
                    text=rec["text"],
                    finish_reason=rec["finish_reason"],
                    prompt_tokens=prompt_tokens,
                    completion_tokens=int(rec["completion_tokens"]),
                    cached_tokens=result.cached_tokens,
                    stop_matched=rec["stop_matched"],
                )
            )
        return out

    async def cancel(self, request_id: str) -> None:
        """Abort on the engine (the request and its per-seed ids)."""
        self.engine.abort(request_id)
        for rid in self.engine.in_flight():
            if rid.startswith(request_id + "-"):
                self.engine.abort(rid)

    async def health(self) -> None:
        """Always healthy."""

    async def aclose(self) -> None:
        """Nothing to release."""


class ReplayReward:
    """Serves a recording's rewards; scoring costs a prefill on `engine`.

    Attributes:
        prompt_tokens: tokens of the PRM's question prompt; steps are sized from the recording.
    """

    name = "replay-prm"

    def __init__(self, engine: SimEngine, recording: Recording, prompt_tokens: int = 200) -> None:
        """Replay `recording`'s rewards on `engine`."""
        self.engine = engine
        self.recording = recording
        self.prompt_tokens = prompt_tokens
        self._sizes = recording.step_tokens()

    @property
    def capabilities(self) -> RewardCapabilities:
        """Abortable, costs engine time."""
        return RewardCapabilities(can_abort=True, uses_engine=True)

    async def score(self, request: ScoreRequest) -> float:
        """The recorded reward, after a simulated prefill of the path."""
        value = self.recording.rewards.get(_reward_key(request))
        if value is None:
            raise BackendRequestError("path not in the recording's rewards; record that node first")
        steps = list(request.steps)
        total = self.prompt_tokens + sum(self._sizes.get(s.strip(), len(s) // 4) for s in steps)
        keys = _keys("prm", request.question, steps, total, self._sizes, "\n\n")
        await self.engine.generate(
            request.request_id, total, 0, prefix=keys, priority=request.priority, kind="reward"
        )
        return value

    async def cancel(self, request_id: str) -> None:
        """Abort on the engine."""
        self.engine.abort(request_id)

    async def aclose(self) -> None:
        """Nothing to release."""
