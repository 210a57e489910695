"""Backend wrapping any LangChain chat model (`BaseChatModel`).

Chat models cannot continue a partial assistant message, so each request is
sent as `request.messages` (or the raw prompt as one user message), then the
partial solution as an assistant message, then a user message asking for the
next step only. Stop strings go to the model's `stop` argument and are also
applied client-side (many chat APIs ignore or cap them).

Per-request options are applied to a copy of the model where it has the field
(`max_tokens` / `max_output_tokens` / `num_predict` / `max_new_tokens`,
`temperature`, `top_p`, `seed`, `logprobs` / `top_logprobs`); anything the model
lacks is simply not sent, and the backend's capabilities say so (`seeded`,
`logprobs`; `honours_max_tokens` as an attribute).

Cancel cancels the asyncio task of the call: the work stops locally, and on
the provider only if its client aborts on cancellation (`can_abort` is False).
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal

from spex_graph.backends._common import (
    Inflight,
    begin_request,
    cut_at_stop,
    make_completion,
    one_line,
    requested_top_logprobs,
    run_children,
)
from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.gate import PriorityGate
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
    SpexError,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

DEFAULT_NEXT_STEP_INSTRUCTION = (
    "Continue the solution above from exactly where it stops. "
    "Write only the next step, without repeating earlier steps."
)
"""User message sent after the partial solution."""

_MAX_TOKEN_FIELDS = ("max_tokens", "max_output_tokens", "num_predict", "max_new_tokens")
_UNAVAILABLE_HINTS = ("connect", "timeout", "unavailable", "overloaded", "ratelimit")

SeedMode = Literal["auto", "field", "bind", "none"]


def _fields(model: Any) -> set[str]:
    fields = getattr(type(model), "model_fields", None)
    return set(fields) if isinstance(fields, dict) else set()


def _finish_kind(metadata: dict[str, Any]) -> str:
    for key in ("finish_reason", "stop_reason", "done_reason", "finishReason"):
        value = metadata.get(key)
        if value:
            text = str(value).lower()
            return "length" if "length" in text or "max_tokens" in text else "stop"
    return "stop"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return None if math.isnan(f) else f


class LangChainChatBackend:
    """Backend on a LangChain chat model (OpenAI, Anthropic, Ollama, fakes, ...).

    Args:
        model: any `BaseChatModel`.
        name: backend name in traces (default "langchain:<model type>").
        max_concurrency: calls in flight at once.
        seed_mode: how seeds reach the model: "field" (copy of the model with
            `seed=s`, for models with a `seed` field such as ChatOpenAI and
            ChatOllama), "bind" (`model.bind(seed=s)`, passed as a call kwarg),
            "none", or "auto" ("field" when the model has a `seed` field, else "none").
        next_step_instruction: the user message that asks for the next step.
        prefix_role: "ai" sends the partial solution as an assistant message,
            "human" inlines it in the user message (for providers that reject
            an assistant message before the last user message).
    """

    name: str
    capabilities: BackendCapabilities

    def __init__(
        self,
        model: BaseChatModel,
        *,
        name: str | None = None,
        max_concurrency: int = 4,
        seed_mode: SeedMode = "auto",
        next_step_instruction: str = DEFAULT_NEXT_STEP_INSTRUCTION,
        prefix_role: Literal["ai", "human"] = "ai",
    ) -> None:
        from langchain_core.language_models import BaseChatModel

        if not isinstance(model, BaseChatModel):
            raise ConfigError(
                f"LangChainChatBackend needs a langchain_core BaseChatModel, not "
                f"{type(model).__name__}"
            )
        if seed_mode not in ("auto", "field", "bind", "none"):
            raise ConfigError(f"seed_mode must be auto, field, bind or none, not {seed_mode!r}")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, not {max_concurrency}")
        fields = _fields(model)
        if seed_mode == "auto":
            seed_mode = "field" if "seed" in fields else "none"
        if seed_mode == "field" and "seed" not in fields:
            raise ConfigError(
                f"{type(model).__name__} has no 'seed' field; use seed_mode='bind' or 'none'"
            )
        self.model = model
        self.name = name or f"langchain:{getattr(model, '_llm_type', type(model).__name__)}"
        self.seed_mode: SeedMode = seed_mode
        self.next_step_instruction = next_step_instruction
        self.prefix_role = prefix_role
        self._max_tokens_field = next((f for f in _MAX_TOKEN_FIELDS if f in fields), None)
        self.honours_max_tokens = self._max_tokens_field is not None
        self._fields = fields
        self.capabilities = BackendCapabilities(
            can_abort=False,
            seeded=seed_mode != "none",
            logprobs="logprobs" in fields,
            shares_prefix_cache=False,
            max_concurrency=max_concurrency,
            can_promote=True,
        )
        self._max_concurrency = max_concurrency
        self._slots: PriorityGate | None = None
        self._inflight: dict[str, Inflight] = {}
        self._closed = False

    def messages_for(self, request: GenerationRequest) -> list[BaseMessage]:
        """The LangChain messages sent for `request` (see the module doc)."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        def to_message(role: str, content: str) -> BaseMessage:
            r = role.lower()
            if r == "system":
                return SystemMessage(content=content)
            if r in ("assistant", "ai"):
                return AIMessage(content=content)
            return HumanMessage(content=content)

        messages = [to_message(role, content) for role, content in request.messages]
        if not messages:
            prompt = request.prompt
            if request.assistant_prefix and prompt.endswith(request.assistant_prefix):
                prompt = prompt[: -len(request.assistant_prefix)]
            messages = [HumanMessage(content=prompt)]
        if request.assistant_prefix:
            if self.prefix_role == "ai":
                messages.append(AIMessage(content=request.assistant_prefix))
                messages.append(HumanMessage(content=self.next_step_instruction))
            else:
                messages.append(
                    HumanMessage(
                        content=f"Solution so far:\n{request.assistant_prefix}\n\n"
                        f"{self.next_step_instruction}"
                    )
                )
        return messages

    def _configured(self, request: GenerationRequest, seed: int) -> Any:
        updates: dict[str, Any] = {}
        if self._max_tokens_field is not None:
            updates[self._max_tokens_field] = request.max_tokens
        if "temperature" in self._fields:
            updates["temperature"] = request.temperature
        if "top_p" in self._fields:
            updates["top_p"] = request.top_p
        if self.seed_mode == "field":
            updates["seed"] = seed
        top = requested_top_logprobs(request)
        if (request.logprobs or top) and "logprobs" in self._fields:
            updates["logprobs"] = True
            if top and "top_logprobs" in self._fields:
                updates["top_logprobs"] = top
        model: Any = self.model.model_copy(update=updates) if updates else self.model
        if self.seed_mode == "bind":
            model = model.bind(seed=seed)
        return model

    # ------------------------------------------------------------------ generate

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """One completion per seed, in seed order (one model call each)."""
        if self._closed:
            raise BackendUnavailableError(
                f"the {self.name} backend was closed; create a new LangChainChatBackend"
            )
        if request.n == 0:
            return []
        state = begin_request(self._inflight, request, self.name)
        coros: list[Coroutine[Any, Any, Completion]] = [
            self._one(request, i, state) for i in range(request.n)
        ]
        try:
            return await run_children(
                state,
                coros,
                on_abandon=self._abandon,
                cancelled_error=lambda: RequestCancelledError(
                    f"request {request.request_id} was cancelled ({self.name})"
                ),
            )
        finally:
            self._inflight.pop(request.request_id, None)

    @staticmethod
    def _abandon(state: Inflight) -> None:
        for task in state.tasks:
            task.cancel()

    def _slots_sem(self) -> PriorityGate:
        if self._slots is None:
            self._slots = PriorityGate(self._max_concurrency)
        return self._slots

    async def promote(self, request_id: str, priority: int) -> None:
        """Raise a request still waiting for a client slot to `priority`."""
        self._slots_sem().promote(request_id, priority)

    async def _one(self, request: GenerationRequest, i: int, state: Inflight) -> Completion:
        model = self._configured(request, int(request.seeds[i]))
        messages = self.messages_for(request)
        async with self._slots_sem().slot(request.priority, request.request_id):
            try:
                message = await model.ainvoke(messages, stop=list(request.stop) or None)
            except SpexError:
                raise
            except Exception as exc:  # provider SDK errors: one line, classified
                detail = f"{type(exc).__name__}: {one_line(exc, 160)}"
                if any(h in type(exc).__name__.lower() for h in _UNAVAILABLE_HINTS):
                    raise BackendUnavailableError(
                        f"{self.name} could not reach its provider ({detail}); check the "
                        "network, endpoint and credentials of the chat model"
                    ) from exc
                raise BackendRequestError(
                    f"{self.name} failed ({detail}); check the chat model's configuration"
                ) from exc
        return self._completion(message, request)

    def _completion(self, message: Any, request: GenerationRequest) -> Completion:
        content = getattr(message, "content", "")
        if isinstance(content, list):  # content blocks
            content = "".join(
                b if isinstance(b, str) else str(b.get("text", "")) if isinstance(b, dict) else ""
                for b in content
            )
        text, cut = cut_at_stop(str(content), request.stop)
        metadata = getattr(message, "response_metadata", None) or {}
        kind = "stop" if cut is not None else _finish_kind(metadata)
        usage = getattr(message, "usage_metadata", None) or {}
        details = usage.get("input_token_details") or {}
        token_logprobs: list[float] = []
        top: list[tuple[tuple[str, float], ...]] = []
        logprobs = metadata.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            for entry in logprobs["content"]:
                if not isinstance(entry, dict):
                    continue
                lp = _num(entry.get("logprob"))
                if lp is not None:
                    token_logprobs.append(lp)
                pairs = [
                    (str(t.get("token", "")), v)
                    for t in entry.get("top_logprobs") or []
                    if isinstance(t, dict) and (v := _num(t.get("logprob"))) is not None
                ]
                top.append(tuple(sorted(pairs, key=lambda p: -p[1])))
        return make_completion(
            text=text,
            finish_reason=kind,
            prompt_tokens=int(usage.get("input_tokens") or 0),
            completion_tokens=int(usage.get("output_tokens") or 0),
            cached_tokens=int(details.get("cache_read") or 0),
            stop_matched=cut,
            token_logprobs=tuple(token_logprobs),
            top_logprobs=tuple(top),
        )

    # ------------------------------------------------------------------ cancel, health, close

    async def cancel(self, request_id: str) -> None:
        """Cancel the calls of `request_id` (locally); unknown ids are ignored."""
        state = self._inflight.get(request_id)
        if state is None or state.cancelled:
            return
        state.cancelled = True
        for task in state.tasks:
            task.cancel()

    async def health(self) -> None:
        """A wrapped model object is always usable here; errors surface on `generate`."""
        if self._closed:
            raise BackendUnavailableError(
                f"the {self.name} backend was closed; create a new LangChainChatBackend"
            )

    async def aclose(self) -> None:
        """Cancel what is in flight; idempotent (the model object itself is not closed)."""
        if self._closed:
            return
        self._closed = True
        for state in list(self._inflight.values()):
            state.cancelled = True
            for task in state.tasks:
                task.cancel()
