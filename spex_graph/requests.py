"""Build the engine requests for a node: prompt, seed, stop strings, scoring input.

Pure functions of (context, problem, tree, path), so the primary search and
speculative work build byte-identical requests for the same node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from spex_graph.backends.base import GenerationRequest
from spex_graph.context import SearchContext
from spex_graph.prompts import join_steps, render_chat
from spex_graph.rewards.base import ScoreRequest
from spex_graph.runtime.dispatcher import ExpansionKey
from spex_graph.tasks.base import Problem
from spex_graph.tree import derive_seed


@functools.lru_cache(maxsize=1024)
def _chat_prefix(messages: tuple[tuple[str, str], ...], template: str) -> str:
    """The rendered question prompt, shared by every node of a query (rendered once)."""
    return render_chat(messages, template)


def query_seed(ctx: SearchContext, problem: Problem) -> int:
    """The query's base seed: the config seed mixed with the problem id."""
    return derive_seed(ctx.config.seed, (hash_text(problem.id),))


def hash_text(text: str) -> int:
    """A stable (process-independent) small hash of a string."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


def generation_builder(
    ctx: SearchContext,
    problem: Problem,
    steps: Sequence[str],
    key: ExpansionKey,
    *,
    until_end: bool,
    priority: int = 0,
) -> Callable[[str], GenerationRequest]:
    """A factory (request_id -> request) for generating the child at `key` below `steps`."""
    messages = tuple(ctx.task.messages(problem))
    delimiter = ctx.task.step_delimiter
    prefix = join_steps(steps, delimiter)
    prompt = _chat_prefix(messages, ctx.config.chat_template) + prefix
    seed = derive_seed(query_seed(ctx, problem), key)
    stop = () if until_end else (delimiter,)
    max_tokens = ctx.config.full_max_tokens if until_end else ctx.config.step_max_tokens
    logprobs = ctx.reward.capabilities.needs_policy_logprobs

    def build(request_id: str) -> GenerationRequest:
        return GenerationRequest(
            prompt=prompt,
            seeds=(seed,),
            request_id=request_id,
            stop=stop,
            max_tokens=max_tokens,
            temperature=ctx.config.temperature,
            top_p=ctx.config.top_p,
            logprobs=logprobs,
            priority=priority,
            messages=messages,
            assistant_prefix=prefix,
        )

    return build


def split_steps(texts: Sequence[str], delimiter: str) -> tuple[str, ...]:
    """Path texts as steps; a whole solution (best-of-N) splits on the delimiter."""
    out: list[str] = []
    for text in texts:
        out.extend(part for part in text.split(delimiter) if part.strip())
    return tuple(out)


def score_request(
    ctx: SearchContext,
    problem: Problem,
    path_texts: Sequence[str],
    request_id: str,
    *,
    step_logprobs: Sequence[float] = (),
    finish_reason: str | None = None,
) -> ScoreRequest:
    """The reward request for the last node of a path."""
    hint = problem.gold if ctx.task.name == "game24" else ""
    return ScoreRequest(
        question=problem.question,
        steps=split_steps(path_texts, ctx.task.step_delimiter) or ("",),
        request_id=request_id,
        task=ctx.task.name,
        gold_hint=hint,
        step_logprobs=tuple(step_logprobs),
        finish_reason=finish_reason,
    )
