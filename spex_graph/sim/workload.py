"""A synthetic reasoning-tree model and the task that goes with it.

Every step a policy writes is drawn from a small generative model whose
statistics are explicit parameters (and can be fitted to a recorded run):

- **Depth.** The first step draws the path's target depth D uniformly from
  `depth_mean +- depth_spread`; every later step keeps its parent's D, except
  that with probability `depth_jitter` each it moves one up or down (never
  below the current depth, never above `depth_mean + depth_spread + 1`).
  The step at depth D states the answer.
  With `depth_sigma > 0` the target depth is right-skewed instead:
  round(lognormal(median `depth_median`, sigma `depth_sigma`)), clipped to
  [1, `depth_max`].
- **Step length.** Tokens per step ~ Normal(`step_tokens_mean`, `step_tokens_std`),
  rounded and clipped to [`step_tokens_min`, `step_tokens_max`]. With
  `step_tokens_sigma > 0` they are lognormal instead:
  log n = log(`step_tokens_median`) + a(problem, depth) + b(sibling), where the
  shared component a carries `step_shared_fraction` of the log-variance
  `step_tokens_sigma`^2 (every sibling at one depth of one problem sees the same
  a: some steps are long for everyone) and b the rest (per request).
- **Correctness.** A Markov chain along the path: the first step is correct
  with probability `p_correct_root`; a correct step's child stays correct
  with `p_stay_correct`; a wrong step's child recovers with `p_recover`.
  The final step's answer is the gold answer if the step is correct, else one
  of `n_wrong_answers` wrong answers (uniformly).
- **Reward.** A process reward model sees the hidden correctness through noise:
  `clip(reward_correct or reward_wrong + Normal(0, prm_noise), 0, 1)`
  (see `spex_graph.sim.reward`). `prm_noise` sets how predictable selection is.
  With `prm_latent_sd > 0` the PRM is Math-Shepherd-like instead: a per-path
  latent z (an AR(1) walk down the path, correlation `prm_latent_rho` per step)
  shifts every score of the path, and a step scores
  sigmoid(`prm_correct_logit` + `prm_latent_sd` z + Normal(0, `prm_step_sd`)) when
  correct (confident, ~0.99) and
  sigmoid(`prm_wrong_logit` + `prm_latent_sd` z + Normal(0, `prm_wrong_sd`)) when
  wrong (broad and low), except that a wrong step is missed (scored like a correct
  one) with probability `prm_miss_rate`.

A step is a pure function of (workload seed, problem id, the request's
sampling seed, parent step): the same node always gets the same text, whether
generated speculatively or not. The text carries the hidden state in a tag,

    [sim d=3 ok=1 n=87 D=8 h=3fa2c1] Step 3.
    [sim d=8 ok=0 n=64 D=8 h=0b11aa] Step 8. The answer is \\boxed{517}.

and is deliberately short: the *token count* `n` is what costs engine time.
The backend recovers the path's state (depth, correctness, tokens so far) by
parsing the tags of the assistant prefix.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from spex_graph.tasks.answers import last_boxed
from spex_graph.tasks.base import Problem

__all__ = [
    "MATH_LIKE",
    "SimStep",
    "SimTask",
    "SyntheticWorkload",
    "parse_problem_id",
    "parse_steps",
    "stable_hash",
]

_TAG = re.compile(r"\[sim d=(\d+) ok=([01]) n=(\d+) D=(\d+) h=([0-9a-f]+)\]")
_PROBLEM = re.compile(r"\[sim problem=([^\]\s]+)\]")


def stable_hash(*parts: object) -> int:
    """A process-independent 64-bit hash of the parts' string forms."""
    text = "\x1f".join(map(str, parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _rng(*parts: object) -> random.Random:
    return random.Random(stable_hash(*parts))


@dataclass(frozen=True)
class SimStep:
    """The hidden state of one synthetic step.

    Attributes:
        depth: 1 for the first step.
        ok: the path is still correct at this step.
        tokens: tokens this step costs.
        target_depth: the depth at which the path states its answer.
        salt: 24 random bits that make sibling texts differ.
        answer: the final answer when this step ends the path, else None.
    """

    depth: int
    ok: bool
    tokens: int
    target_depth: int
    salt: int
    answer: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether this step states the final answer."""
        return self.answer is not None

    def render(self) -> str:
        """The step's text: the state tag, a stub sentence, and the answer if final."""
        text = (
            f"[sim d={self.depth} ok={int(self.ok)} n={self.tokens} D={self.target_depth} "
            f"h={self.salt:06x}] Step {self.depth}."
        )
        if self.answer is not None:
            text += f" The answer is \\boxed{{{self.answer}}}."
        return text


def parse_steps(text: str) -> list[SimStep]:
    """Every tagged step in `text` (an assistant prefix or a path), in order."""
    return [SimStep(*fields) for fields in _parse_cached(text)]


_StepFields = tuple[int, bool, int, int, int, str | None]


@functools.lru_cache(maxsize=1 << 16)
def _parse_cached(text: str) -> tuple[_StepFields, ...]:
    # plain tuples, not SimStep objects: tuples of atoms are untracked by the garbage
    # collector, so a full cache (~400k objects otherwise) adds nothing to every full
    # collection of a long benchmark
    out: list[_StepFields] = []
    matches = list(_TAG.finditer(text))
    for k, match in enumerate(matches):
        # the step's own text runs to the next tag; its answer may hold braces (\frac{1}{2})
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        own = text[match.end() : end]
        out.append(
            (
                int(match.group(1)),
                match.group(2) == "1",
                int(match.group(3)),
                int(match.group(4)),
                int(match.group(5), 16),
                last_boxed(own) if "\\boxed" in own else None,
            )
        )
    return tuple(out)


def parse_problem_id(text: str) -> str | None:
    """The `[sim problem=ID]` tag in a prompt or question, if any."""
    match = _PROBLEM.search(text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class SyntheticWorkload:
    """Parameters of the synthetic reasoning tree (see the module docstring).

    Attributes:
        depth_mean, depth_spread, depth_jitter: target depth model.
        step_tokens_mean, step_tokens_std, step_tokens_min, step_tokens_max: step lengths.
        p_correct_root, p_stay_correct, p_recover: the correctness Markov chain.
        n_wrong_answers: distinct wrong final answers per problem.
        prm_noise: std of the reward model's noise.
        reward_correct, reward_wrong: the reward model's mean score of correct / wrong steps.
        prompt_tokens: tokens of system prompt + question (policy and PRM prompts).
        seed: workload seed (changes every problem's tree).
        difficulty_spread: per-problem scaling down of `p_correct_root` (see `p_root`).
        wrong_answer_skew: probability a wrong path ends in the common distractor.
        step_tokens_sigma: > 0 switches step lengths to the lognormal model with this
            log-space sigma (0 keeps the clipped normal).
        step_tokens_median: the lognormal's median tokens per step.
        step_shared_fraction: share of the log-variance common to all siblings at one
            (problem, depth); the rest is drawn per request.
        depth_sigma: > 0 switches target depths to round(lognormal(depth_median,
            depth_sigma)) clipped to [1, depth_max] (0 keeps the uniform model).
        depth_median, depth_max: the lognormal depth's median and cap.
        prm_latent_sd: > 0 switches the PRM to the per-path-latent model (see the
            module docstring; 0 keeps the clipped normal).
        prm_latent_rho: per-step correlation of the path latent.
        prm_correct_logit, prm_step_sd: logit mean and per-step noise of correct steps.
        prm_wrong_logit, prm_wrong_sd: logit mean and spread of wrong steps.
        prm_miss_rate: probability that the PRM misses a wrong step and scores it like
            a correct one (per step, deterministic).
    """

    depth_mean: int = 8
    depth_spread: int = 2
    depth_jitter: float = 0.1
    step_tokens_mean: float = 90.0
    step_tokens_std: float = 30.0
    step_tokens_min: int = 16
    step_tokens_max: int = 240
    p_correct_root: float = 0.8
    p_stay_correct: float = 0.9
    p_recover: float = 0.03
    n_wrong_answers: int = 4
    prm_noise: float = 0.2
    reward_correct: float = 0.7
    reward_wrong: float = 0.35
    prompt_tokens: int = 200
    seed: int = 0
    difficulty_spread: float = 0.0
    wrong_answer_skew: float = 0.0
    step_tokens_sigma: float = 0.0
    step_tokens_median: float = 38.0
    step_shared_fraction: float = 0.5
    depth_sigma: float = 0.0
    depth_median: float = 3.0
    depth_max: int = 25
    prm_latent_sd: float = 0.0
    prm_latent_rho: float = 0.9
    prm_correct_logit: float = 4.6
    prm_step_sd: float = 0.3
    prm_wrong_logit: float = -1.4
    prm_wrong_sd: float = 1.2
    prm_miss_rate: float = 0.0

    # ---------------------------------------------------------------- answers

    def p_root(self, problem_id: str) -> float:
        """This problem's first-step correctness: `p_correct_root` scaled down by a
        per-problem difficulty u in [0, 1): p_correct_root x (1 - difficulty_spread x u)."""
        u = (stable_hash(self.seed, "difficulty", problem_id) % 10_000) / 10_000
        return self.p_correct_root * (1.0 - self.difficulty_spread * u)

    def wrong_index(self, rng: random.Random) -> int:
        """Which wrong answer a wrong path ends in: the first (a common distractor) with
        probability `wrong_answer_skew`, else uniformly among all."""
        if self.wrong_answer_skew > 0 and rng.random() < self.wrong_answer_skew:
            return 0
        return rng.randrange(self.n_wrong_answers)

    def gold(self, problem_id: str) -> str:
        """The gold answer of a problem (an integer 100..999 as text)."""
        return str(100 + stable_hash(self.seed, "gold", problem_id) % 900)

    def wrong_answer(self, problem_id: str, k: int) -> str:
        """The k-th wrong answer of a problem (distinct from the gold one)."""
        gold = int(self.gold(problem_id))
        return str(1000 + (gold * 7 + 13 * (k % max(1, self.n_wrong_answers))) % 9000)

    # ---------------------------------------------------------------- steps

    def step_tokens(self, rng: random.Random, shared: float = 0.0) -> int:
        """One step length: the clipped normal, or the lognormal with the shared
        (problem, depth) component `shared` (a standard normal draw) when
        `step_tokens_sigma > 0`."""
        if self.step_tokens_sigma > 0:
            var = self.step_tokens_sigma**2
            f = min(1.0, max(0.0, self.step_shared_fraction))
            log_n = (
                math.log(self.step_tokens_median)
                + math.sqrt(var * f) * shared
                + math.sqrt(var * (1.0 - f)) * rng.gauss(0.0, 1.0)
            )
            n = round(math.exp(log_n))
        else:
            n = round(rng.gauss(self.step_tokens_mean, self.step_tokens_std))
        return max(self.step_tokens_min, min(self.step_tokens_max, n))

    def shared_length(self, problem_id: str, depth: int) -> float:
        """The (problem, depth) component of the log step length (a standard normal)."""
        return _rng(self.seed, "len", problem_id, depth).gauss(0.0, 1.0)

    def first_target_depth(self, rng: random.Random) -> int:
        """The target depth a path draws at its first step."""
        if self.depth_sigma > 0:
            d = round(math.exp(rng.gauss(math.log(self.depth_median), self.depth_sigma)))
            return max(1, min(self.depth_max, d))
        lo = max(1, self.depth_mean - self.depth_spread)
        return rng.randint(lo, max(lo, self.depth_mean + self.depth_spread))

    @property
    def deepest(self) -> int:
        """The deepest target depth a path can have."""
        if self.depth_sigma > 0:
            return self.depth_max
        return self.depth_mean + self.depth_spread + 1

    def child(self, problem_id: str, parent: SimStep | None, seed: int) -> SimStep:
        """The step a policy writes below `parent` (None = first step) with `seed`."""
        depth = 1 if parent is None else parent.depth + 1
        rng = _rng(self.seed, problem_id, seed, depth)
        if parent is None:
            p_ok = self.p_root(problem_id)
            target = self.first_target_depth(rng)
        else:
            p_ok = self.p_stay_correct if parent.ok else self.p_recover
            target = parent.target_depth
            u = rng.random()
            if u < self.depth_jitter:
                target -= 1
            elif u < 2 * self.depth_jitter:
                target += 1
            target = min(target, self.deepest)
        target = max(target, depth)
        ok = rng.random() < p_ok
        shared = self.shared_length(problem_id, depth) if self.step_tokens_sigma > 0 else 0.0
        tokens = self.step_tokens(rng, shared)
        salt = rng.getrandbits(24)
        answer = None
        if depth >= target:
            if ok:
                answer = self.gold(problem_id)
            else:
                answer = self.wrong_answer(problem_id, self.wrong_index(rng))
        return SimStep(depth, ok, tokens, target, salt, answer)

    def continuation(
        self, problem_id: str, parent: SimStep | None, seed: int, max_steps: int = 64
    ) -> Iterable[SimStep]:
        """Steps from below `parent` to the answer (lazily): one request without stop strings.

        The first step uses `seed` (so it equals `child(..., seed)`); step j > 0 uses a
        seed derived from (seed, j).
        """
        node = parent
        for j in range(max_steps):
            step_seed = seed if j == 0 else stable_hash(seed, j) & 0x7FFF_FFFF
            node = self.child(problem_id, node, step_seed)
            yield node
            if node.terminal:
                return

    def sample_path(self, problem_id: str, seed: int) -> list[SimStep]:
        """One whole path from the root (for statistics and tests)."""
        return list(self.continuation(problem_id, None, seed))

    # ---------------------------------------------------------------- statistics

    def correct_rate_at(self, depth: int) -> float:
        """P(a step at `depth` is correct) under the Markov chain (depth >= 1)."""
        p = self.p_correct_root * (1.0 - self.difficulty_spread / 2)  # mean over problems
        for _ in range(depth - 1):
            p = p * self.p_stay_correct + (1 - p) * self.p_recover
        return p

    def expected_correct_rate(self) -> float:
        """Expected fraction of correct finished paths (ignoring depth jitter)."""
        lo = max(1, self.depth_mean - self.depth_spread)
        depths = range(lo, self.depth_mean + self.depth_spread + 1)
        return sum(self.correct_rate_at(d) for d in depths) / len(depths)

    @classmethod
    def fit(
        cls,
        step_tokens: Sequence[int],
        depths: Sequence[int],
        correct_rate: float,
        **overrides: float,
    ) -> SyntheticWorkload:
        """Fit lengths, depths and correctness to a recorded run.

        Step-length mean/std and depth mean/spread come from the samples
        (spread = round(sqrt(3) x depth std), the half-width of a uniform with
        that std); `p_stay_correct` is solved by bisection so that
        `expected_correct_rate()` equals `correct_rate`, keeping `p_correct_root`
        and `p_recover` (defaults or `overrides`).
        """
        if not step_tokens or not depths:
            raise ValueError("fit needs at least one step length and one path depth")
        mean_t = sum(step_tokens) / len(step_tokens)
        std_t = math.sqrt(sum((t - mean_t) ** 2 for t in step_tokens) / len(step_tokens))
        mean_d = sum(depths) / len(depths)
        std_d = math.sqrt(sum((d - mean_d) ** 2 for d in depths) / len(depths))
        base = replace(
            cls(),
            step_tokens_mean=mean_t,
            step_tokens_std=std_t,
            step_tokens_min=max(1, min(step_tokens)),
            step_tokens_max=max(step_tokens),
            depth_mean=max(1, round(mean_d)),
            depth_spread=round(math.sqrt(3) * std_d),
        )
        base = replace(base, **overrides)  # type: ignore[arg-type]
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            if replace(base, p_stay_correct=mid).expected_correct_rate() < correct_rate:
                lo = mid
            else:
                hi = mid
        return replace(base, p_stay_correct=(lo + hi) / 2)


MATH_LIKE = SyntheticWorkload(difficulty_spread=0.7, wrong_answer_skew=0.5)
"""A tree shaped like MATH-500 on a 7B policy (assumptions, not measurements).

6-10 steps per solution (depth 8 +- 2) of ~90 +- 30 tokens (MATH solutions of a
7B model run ~500-1000 tokens split on blank lines); the first step is right
80% of the time, a right path stays right with 0.9 per step and a wrong one
recovers with 0.03, so ~45% of finished paths are correct (the 30-50% the
brief targets; strong math-tuned 7B models score higher); 4 wrong answers per
problem, half of the wrong paths ending in one common distractor; problems vary
in difficulty (first-step correctness 0.8 down to 0.24), so majority and
reward-weighted votes sometimes pick the distractor and accuracy means
something; PRM means 0.70 / 0.35 with noise std 0.2; a 200-token prompt.
"""


class SimTask:
    """The Task protocol over a synthetic workload: problems `sim-0`, `sim-1`, ...

    Questions carry a `[sim problem=ID]` tag, so the simulated backend and reward
    model find the problem from the prompt alone.
    """

    name: str = "sim"
    step_delimiter: str = "\n\n"

    def __init__(self, workload: SyntheticWorkload = MATH_LIKE, max_depth: int | None = None):
        """A task over `workload`; `max_depth` defaults to well past its deepest path."""
        self.workload = workload
        self.max_depth = max_depth or workload.deepest + 5

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Problems `offset` .. `offset + limit` (100 when `limit` is None)."""
        count = 100 if limit is None else limit
        return [self.problem(i) for i in range(offset, offset + count)]

    def problem(self, index: int) -> Problem:
        """Problem number `index`."""
        pid = f"sim-{index}"
        return Problem(
            id=pid,
            task=self.name,
            question=f"[sim problem={pid}] Synthetic problem {index}.",
            gold=self.workload.gold(pid),
            meta={"index": index},
        )

    def messages(self, problem: Problem) -> list[tuple[str, str]]:
        """A short system prompt and the question."""
        return [
            ("system", "Solve step by step; separate steps with a blank line."),
            ("user", problem.question),
        ]

    def extract_answer(self, text: str) -> str | None:
        """The last `\\boxed{...}` in the text (nested braces kept, as the real tasks read it)."""
        return last_boxed(text)

    def is_terminal(self, step_text: str) -> bool:
        """Whether the step states an answer."""
        return "\\boxed{" in (step_text or "")

    def equivalent(self, a: str, b: str) -> bool:
        """Exact match after stripping."""
        return a.strip() == b.strip()

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Whether the answer is the gold one."""
        return answer is not None and self.equivalent(answer, problem.gold)
