"""How well does a CPU reward rank correct solutions over incorrect ones?

For each problem, sample k whole solutions from the policy (seeded), score each
path with the signals the embedded default reward combines (the policy's token
confidence and the arithmetic check of every step), and report:

* AUC of each signal for separating correct from incorrect solutions;
* accuracy of the top-ranked solution vs. a single chain-of-thought sample
  (the first sample) vs. a majority vote over the k samples.

    spex eval-reward --dataset gsm8k --limit 50 --samples 4 --model 1.5b
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from spex_graph.backends.base import Backend, GenerationRequest
from spex_graph.prompts import render_chat
from spex_graph.rewards.signals import confidence
from spex_graph.rewards.verifiers import check_arithmetic
from spex_graph.tasks.base import Problem, Task
from spex_graph.tree import derive_seed


@dataclass(frozen=True)
class ScoredSample:
    """One sampled solution with its signals.

    Attributes:
        problem_id, sample: which problem and which sample.
        answer: extracted answer; correct: graded against the gold answer.
        confidence: exp(mean token logprob) of the whole solution.
        checked, wrong: equations checked / found wrong over all steps.
        score: the combined path score (see `combined_score`).
        text: the sampled solution (kept so a new reward can rescore the same samples).
    """

    problem_id: str
    sample: int
    answer: str | None
    correct: bool
    confidence: float
    checked: int
    wrong: int
    score: float
    text: str = ""


def combined_score(conf: float, checked: int, wrong: int) -> float:
    """Path-level version of ArithmeticConfidenceReward: confidence, x0.1 when any
    equation is wrong, pulled halfway to 1 when equations were checked and all hold."""
    if wrong > 0:
        return conf * 0.1
    if checked > 0:
        return conf + (1.0 - conf) * 0.5
    return conf


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties count half."""
    if not positives or not negatives:
        return math.nan
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))


async def sample_and_score(
    backend: Backend,
    task: Task,
    problems: Sequence[Problem],
    samples: int,
    *,
    max_tokens: int = 400,
    temperature: float = 0.7,
    chat_template: str = "chatml",
    seed: int = 0,
) -> list[ScoredSample]:
    """Sample `samples` solutions per problem concurrently and score every one."""
    out: list[ScoredSample] = []
    # bounded: an engine queue far deeper than its slots only turns waiting into timeouts
    gate = asyncio.Semaphore(max(1, backend.capabilities.max_concurrency))

    async def one(problem: Problem, k: int) -> ScoredSample:
        async with gate:
            return await _one(problem, k)

    async def _one(problem: Problem, k: int) -> ScoredSample:
        messages = tuple(task.messages(problem))
        request = GenerationRequest(
            prompt=render_chat(messages, chat_template),
            seeds=(derive_seed(seed, (k,)),),
            request_id=f"eval-{problem.id}-{k}",
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=True,
            messages=messages,
        )
        completion = (await backend.generate(request))[0]
        steps = [s for s in completion.text.split(task.step_delimiter) if s.strip()]
        checked = wrong = 0
        for step in steps:
            check = check_arithmetic(step)
            checked, wrong = checked + check.checked, wrong + check.wrong
        conf = confidence(completion.token_logprobs)
        answer = task.extract_answer(completion.text)
        return ScoredSample(
            problem.id,
            k,
            answer,
            task.is_correct(problem, answer),
            conf,
            checked,
            wrong,
            combined_score(conf, checked, wrong),
            completion.text,
        )

    from tqdm import tqdm

    jobs = [one(p, k) for p in problems for k in range(samples)]
    with tqdm(total=len(jobs), desc="samples", unit="sol") as bar:

        async def tracked(job: Awaitable[ScoredSample]) -> ScoredSample:
            result = await job
            bar.update(1)
            return result

        out.extend(await asyncio.gather(*(tracked(j) for j in jobs)))
    return out


def summarise(samples: Sequence[ScoredSample], task: Task) -> dict[str, float]:
    """AUCs of each signal and top-1 / single-sample / majority accuracies."""
    pos = [s for s in samples if s.correct]
    neg = [s for s in samples if not s.correct]
    by_problem: dict[str, list[ScoredSample]] = {}
    for s in samples:
        by_problem.setdefault(s.problem_id, []).append(s)
    top1 = single = majority = 0
    for group in by_problem.values():
        group = sorted(group, key=lambda s: s.sample)
        single += group[0].correct
        top1 += max(group, key=lambda s: (s.score, -s.sample)).correct
        answers = Counter(s.answer for s in group if s.answer is not None)
        if answers:
            best = answers.most_common(1)[0][0]
            majority += next(s.correct for s in group if s.answer == best)
    n = max(len(by_problem), 1)
    return {
        "problems": len(by_problem),
        "samples": len(samples),
        "correct_fraction": len(pos) / max(len(samples), 1),
        "auc_combined": auc([s.score for s in pos], [s.score for s in neg]),
        "auc_confidence": auc([s.confidence for s in pos], [s.confidence for s in neg]),
        "auc_arithmetic": auc(
            [float(s.wrong == 0) for s in pos], [float(s.wrong == 0) for s in neg]
        ),
        "accuracy_top_ranked": top1 / n,
        "accuracy_single_sample": single / n,
        "accuracy_majority_vote": majority / n,
    }
