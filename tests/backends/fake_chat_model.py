"""A seeded LangChain chat model on the toy LM (stands in for ChatOpenAI-like providers).

It has the fields real provider models have (`seed`, `max_tokens`,
`temperature`, `top_p`, `logprobs`, `top_logprobs`), honours `stop`, reports
`usage_metadata` and OpenAI-style `response_metadata` (finish_reason,
logprobs), and takes `token_delay` seconds per token (async) so cancellation
is testable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from backends.fake_http import FakeTokenizer, earliest_stop, step
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

_ROLE = {"human": "user", "ai": "assistant", "system": "system"}
_TOKENIZER = FakeTokenizer()


class SeededFakeChat(BaseChatModel):
    """Deterministic per seed; see the module doc."""

    seed: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.7
    top_p: float = 1.0
    logprobs: bool | None = None
    top_logprobs: int | None = None
    token_delay: float = 0.002
    fail_with: str | None = None

    @property
    def _llm_type(self) -> str:
        return "seeded-fake-chat"

    def _prompt(self, messages: list[BaseMessage]) -> str:
        return (
            "".join(f"{_ROLE.get(m.type, m.type)}: {m.content}\n" for m in messages) + "assistant:"
        )

    def _result(
        self,
        prompt: str,
        tokens: list[str],
        lps: list[float],
        tops: list[Any],
        finish: str,
        text: str,
    ) -> ChatResult:
        metadata: dict[str, Any] = {"finish_reason": finish, "model_name": "seeded-fake"}
        if self.logprobs:
            metadata["logprobs"] = {
                "content": [
                    {
                        "token": t,
                        "logprob": lp,
                        "top_logprobs": [
                            {"token": tt, "logprob": tlp}
                            for tt, tlp in top[: self.top_logprobs or 0]
                        ],
                    }
                    for t, lp, top in zip(tokens, lps, tops, strict=True)
                ]
            }
        n_in = len(_TOKENIZER.encode(prompt))
        message = AIMessage(
            content=text,
            response_metadata=metadata,
            usage_metadata={
                "input_tokens": n_in,
                "output_tokens": len(tokens),
                "total_tokens": n_in + len(tokens),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _steps(self, prompt: str, stop: list[str] | None, seed: int | None) -> Any:
        tokens: list[str] = []
        lps: list[float] = []
        tops: list[Any] = []
        for pos in range(self.max_tokens or 256):
            s = step(prompt, "".join(tokens), pos, seed, self.temperature, self.top_p)
            yield
            tokens.append("" if s.token == "</s>" else s.token)
            lps.append(s.logprob)
            tops.append(s.top)
            if s.token == "</s>":
                return tokens, lps, tops, "stop", "".join(tokens)
            hit = earliest_stop("".join(tokens), stop or [])
            if hit is not None:
                return tokens, lps, tops, "stop", "".join(tokens)[: hit[0]]
        return tokens, lps, tops, "length", "".join(tokens)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        prompt = self._prompt(messages)
        gen = self._steps(prompt, stop, kwargs.get("seed", self.seed))
        try:
            while True:
                next(gen)
                time.sleep(self.token_delay)
        except StopIteration as done:
            return self._result(prompt, *done.value)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        prompt = self._prompt(messages)
        gen = self._steps(prompt, stop, kwargs.get("seed", self.seed))
        try:
            while True:
                next(gen)
                await asyncio.sleep(self.token_delay)
        except StopIteration as done:
            return self._result(prompt, *done.value)
