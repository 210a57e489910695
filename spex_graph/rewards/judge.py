"""LLM-as-judge reward read from logprobs, on any Backend.

The judge asks "Is this step correct? ... Answer:" and reads the first
generated token's distribution: reward = P(yes) / (P(yes) + P(no)), summing the
probabilities of the top tokens that equal `yes` / `no` up to case and
surrounding spaces ("Yes", " yes", ...). When only one of the two is in the top
list, the other's probability is taken as its upper bound: the smaller of the
least likely listed token's probability and the unlisted mass.

It asks the backend for the top logprobs of the first token
(`top_logprobs`); when the backend cannot return them (no top logprobs in the
completion), it falls back to the generated token's own logprob p at
temperature 0: the reward is p if the token is "yes", 1 - p if it is "no" (this
assumes the mass outside yes/no is negligible, so it overstates confidence when
other tokens are likely), and 0.5 if it is neither. Without any logprobs the
reward is 1.0 / 0.0 / 0.5 from the text alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from spex_graph.backends._common import completion_top_logprobs, make_request
from spex_graph.backends.base import Backend, Completion
from spex_graph.errors import ConfigError
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest

DEFAULT_JUDGE_TEMPLATE = (
    "Question: {question}\n\n"
    "Solution so far:\n{previous}\n\n"
    "New step:\n{step}\n\n"
    "Is this step correct? Answer Yes or No.\n"
    "Answer:"
)
"""Default prompt; fields: {question}, {previous}, {step}, {steps}, {task}."""


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _same(token: str, word: str) -> bool:
    return token.strip().lower() == word.strip().lower() and bool(word.strip())


class LogprobJudge:
    """Reward = P(yes) / (P(yes) + P(no)) of a judge model's first answer token.

    Args:
        backend: any Backend (SGLang, OpenAI-compatible, LangChain, embedded).
        template: the judge prompt (see `DEFAULT_JUDGE_TEMPLATE` for its fields).
        yes: the "correct" answer token.
        no: the "incorrect" answer token.
        top_logprobs: how many top tokens of the first position to ask for.
        max_tokens: tokens to generate (1 is enough for completion models; chat
            backends that ignore it just return more text).
        name: reward name in traces.
        owns_backend: `aclose` also closes the backend.
    """

    name: str
    capabilities: RewardCapabilities

    def __init__(
        self,
        backend: Backend,
        template: str = DEFAULT_JUDGE_TEMPLATE,
        yes: str = " Yes",
        no: str = " No",
        *,
        top_logprobs: int = 5,
        max_tokens: int = 1,
        name: str = "logprob-judge",
        owns_backend: bool = False,
    ) -> None:
        if _same(yes, no):
            raise ConfigError(f"the judge's yes and no tokens must differ (got {yes!r}, {no!r})")
        if top_logprobs < 1:
            raise ConfigError(f"top_logprobs must be >= 1, not {top_logprobs}")
        self.backend = backend
        self.template = template
        self.yes = yes
        self.no = no
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens
        self.name = name
        self.owns_backend = owns_backend
        self.capabilities = RewardCapabilities(
            can_abort=backend.capabilities.can_abort, uses_engine=True
        )

    def prompt_for(self, request: ScoreRequest) -> str:
        """The judge prompt for the last step of `request`."""
        steps: Sequence[str] = request.steps
        previous = "\n".join(s.strip() for s in steps[:-1]) or "(none)"
        return self.template.format_map(
            _Fields(
                question=request.question.strip(),
                previous=previous,
                step=steps[-1].strip() if steps else "",
                steps="\n".join(s.strip() for s in steps),
                task=request.task,
            )
        )

    @staticmethod
    def _rid(request_id: str) -> str:
        return f"{request_id}-judge"

    async def score(self, request: ScoreRequest) -> float:
        """Judge the last step; P(yes) / (P(yes) + P(no)) of the first answer token."""
        if not request.steps:
            raise ConfigError("LogprobJudge.score needs at least one step to judge")
        prompt = self.prompt_for(request)
        generation = make_request(
            prompt=prompt,
            seeds=(0,),
            request_id=self._rid(request.request_id),
            max_tokens=self.max_tokens,
            temperature=0.0,
            top_p=1.0,
            logprobs=True,
            top_logprobs=self.top_logprobs,
            messages=(("user", prompt),),
        )
        completions = await self.backend.generate(generation)
        return self.score_completion(completions[0])

    def score_completion(self, completion: Completion) -> float:
        """The reward read from one judge completion (see the module doc)."""
        tops = completion_top_logprobs(completion)
        if tops and tops[0]:
            probs = [math.exp(lp) for _, lp in tops[0]]
            p_yes = sum(math.exp(lp) for tok, lp in tops[0] if _same(tok, self.yes))
            p_no = sum(math.exp(lp) for tok, lp in tops[0] if _same(tok, self.no))
            # an answer missing from the top list has at most the smallest listed
            # probability (and at most the unlisted mass): use that bound
            bound = min(min(probs), max(0.0, 1.0 - sum(probs)))
            if p_yes > 0.0 and p_no == 0.0:
                p_no = bound
            elif p_no > 0.0 and p_yes == 0.0:
                p_yes = bound
            if p_yes + p_no > 0.0:
                return p_yes / (p_yes + p_no)
        text = completion.text.strip().lower()
        says_yes = bool(self.yes.strip()) and text.startswith(self.yes.strip().lower())
        says_no = bool(self.no.strip()) and text.startswith(self.no.strip().lower())
        if says_yes == says_no:  # neither (or an ambiguous pair of words)
            return 0.5
        if completion.token_logprobs:
            p = min(1.0, max(0.0, math.exp(completion.token_logprobs[0])))
            return p if says_yes else 1.0 - p
        return 1.0 if says_yes else 0.0

    async def cancel(self, request_id: str) -> None:
        """Cancel the judge call for `request_id` on the backend; unknown ids ignored."""
        await self.backend.cancel(self._rid(request_id))

    async def aclose(self) -> None:
        """Close the backend if this judge owns it."""
        if self.owns_backend:
            await self.backend.aclose()
