"""Backend for OpenAI-compatible servers: vLLM, llama.cpp server, SGLang's OpenAI API, ...

Completion mode (default) sends the raw prompt to `POST /v1/completions`, one
request per seed (`n=1`, `seed=s`), so every sample is reproducible on servers
that honour per-request seeds (vLLM, llama.cpp, SGLang with deterministic
inference).

Chat mode (`chat=True`) sends `request.messages` to `POST /v1/chat/completions`.
Most chat servers cannot continue a partial assistant message, so the partial
solution (`request.assistant_prefix`) goes in as an assistant message followed
by a user message asking to continue with the next step only. With
`continue_final_message=True` (vLLM) the server continues the assistant
message for real instead (`continue_final_message`, `add_generation_prompt=False`).

Cancel drops the HTTP connection of every continuation; vLLM and llama.cpp
abort a request whose client disconnected.

Requests stream by default (`stream=True`: `"stream": true` with
`stream_options.include_usage`), so a request whose results are dropped
(cancelled, or a sibling failed) still says what it cost: `aborted_tokens()`
sums the tokens streamed for it (one per logprob entry, else one per chunk that
carries text; a usage report in a chunk overrides the count). Tokens generated
after the last chunk the client read (in flight, or buffered, when the connection
dropped) are not seen: the count is a lower bound. `stream=False` sends plain
requests (for servers that cannot stream) and counts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx

from spex_graph.backends._common import (
    HttpService,
    Inflight,
    begin_request,
    cut_at_stop,
    make_completion,
    one_line,
    requested_top_logprobs,
    run_children,
    server_message,
)
from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.gate import PriorityGate
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
    SpexError,
    TransientBackendError,
)

OPENAI_START_HINT = (
    "start it (e.g. `vllm serve MODEL --port 8000` or `llama-server -m MODEL.gguf --port 8080`) "
    "or pass --backend-url"
)

DEFAULT_CONTINUE_INSTRUCTION = (
    "Continue the solution above from exactly where it stops. "
    "Write only the next step, without repeating earlier steps."
)
"""User message appended after the partial solution in chat mode."""

_ROLES = {"human": "user", "ai": "assistant", "user": "user", "assistant": "assistant"}


def _finish_kind(reason: Any) -> str:
    text = str(reason or "stop").lower()
    if text in ("length", "max_tokens", "model_length"):
        return "length"
    if text in ("abort", "cancelled", "canceled"):
        return "abort"
    return "stop"


class _ServerSentEvents:
    """Incremental parser of a `text/event-stream` body: `feed(line)` returns the
    (event name, data) of every event the line completes. Data lines are joined with
    newlines; llama.cpp's `error: {...}` line counts as an "error" event; anything
    else that is not an event field is kept (a few lines) in `other` for messages."""

    def __init__(self) -> None:
        self.other: list[str] = []
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> list[tuple[str, str]]:
        """Take one line of the body ("" ends the current event)."""
        line = line.rstrip("\r")
        if not line:
            if not self._data:
                self._name = "message"
                return []
            event = (self._name, "\n".join(self._data).strip())
            self._name, self._data = "message", []
            return [event]
        if line.startswith(":"):
            return []  # a comment (keep-alive)
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value.strip() or "message"
        elif field == "error":
            return [("error", value.strip())]
        elif field not in ("id", "retry") and len(self.other) < 5:
            self.other.append(line.strip())
        return []

    async def read(self, lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
        """Every event of the body, to its end (the last one may lack its blank line)."""
        async for line in lines:
            for event in self.feed(line):
                yield event
        for event in self.feed(""):
            yield event


class _StreamedAnswer:
    """Streamed chunks merged into the shape of a non-streamed answer (first choice)."""

    def __init__(self, *, chat: bool) -> None:
        self.chat = chat
        self.text: list[str] = []
        self.finish_reason: Any = None
        self.stop_reason: Any = None
        self.usage: dict[str, Any] | None = None
        self.events = 0
        self.done = False  # [DONE] arrived
        self._counted = 0  # tokens counted from logprobs / text chunks
        self._logprobs: dict[str, list[Any]] = {}

    @property
    def tokens(self) -> int:
        """Tokens generated so far: the server's usage report, else those counted."""
        reported = self.usage.get("completion_tokens") if self.usage else None
        return reported if isinstance(reported, int) else self._counted

    def add(self, chunk: dict[str, Any]) -> None:
        """Merge one event."""
        self.events += 1
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(choice, dict):
            self._add_choice(choice)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage

    def _add_choice(self, choice: dict[str, Any]) -> None:
        if self.chat:
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else None
        else:
            piece = choice.get("text")
        piece = piece if isinstance(piece, str) else ""
        self.text.append(piece)
        counted = 0
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            fields = ("content",) if self.chat else ("tokens", "token_logprobs", "top_logprobs")
            for name in fields:
                values = logprobs.get(name)
                if isinstance(values, list):
                    self._logprobs.setdefault(name, []).extend(values)
            first = logprobs.get(fields[0])
            if not isinstance(first, list):  # llama.cpp's completions: the chat shape
                first = logprobs.get("content")
            counted = len(first) if isinstance(first, list) else int(bool(piece))
        elif piece:
            counted = 1
        self._counted += counted
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
            self.stop_reason = choice.get("stop_reason", choice.get("matched_stop"))

    def answer(self) -> dict[str, Any]:
        """The merged answer, as the non-streamed endpoint would have sent it."""
        text = "".join(self.text)
        choice: dict[str, Any] = {"finish_reason": self.finish_reason}
        if self.stop_reason is not None:
            choice["stop_reason"] = self.stop_reason
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if self._logprobs:
            choice["logprobs"] = dict(self._logprobs)
        usage = dict(self.usage or {})
        usage.setdefault("completion_tokens", self._counted)
        return {"choices": [choice], "usage": usage}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if not math.isnan(f) else None


class OpenAICompatBackend:
    """Backend for any server with the OpenAI completions (or chat) API.

    Args:
        base_url: server URL, with or without the trailing `/v1`.
        model: the served model name (as listed by `GET /v1/models`).
        api_key: sent as `Authorization: Bearer ...` if given.
        chat: use `/v1/chat/completions` with `request.messages` (see the module doc).
        continue_final_message: chat mode on vLLM: continue the partial assistant
            message itself instead of asking for the next step in a user message.
        continue_instruction: the user message that asks for the next step (chat mode).
        timeout: seconds one request may take.
        connect_timeout: seconds to open a connection.
        max_concurrency: requests in flight at once from this client.
        send_seed: send `seed` (one per continuation).
        abort_on_disconnect: the server stops work when the client disconnects
            (vLLM, llama.cpp): reported as `capabilities.can_abort`.
        extra_body: extra fields merged into every request body (server-specific
            options such as vLLM's `top_k` or `repetition_penalty`).
        stream: stream every request, counting the tokens of dropped requests
            (`aborted_tokens`, `capabilities.counts_aborted_tokens`); False for a
            server that cannot stream.
        name: backend name in traces.
    """

    name: str
    capabilities: BackendCapabilities

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        chat: bool = False,
        continue_final_message: bool = False,
        continue_instruction: str = DEFAULT_CONTINUE_INSTRUCTION,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_concurrency: int = 32,
        send_seed: bool = True,
        abort_on_disconnect: bool = True,
        extra_body: dict[str, Any] | None = None,
        stream: bool = True,
        name: str = "openai-compat",
    ) -> None:
        if not model:
            raise ConfigError("OpenAICompatBackend needs the served model name; pass model=...")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, not {max_concurrency}")
        url = (base_url or "").strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        self.name = name
        self.model = model
        self.chat = chat
        self.continue_final_message = continue_final_message
        self.continue_instruction = continue_instruction
        self.send_seed = send_seed
        self.extra_body = dict(extra_body or {})
        self.stream = stream
        self._http = HttpService(
            "OpenAI-compatible server",
            url,
            start_hint=OPENAI_START_HINT,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_concurrency + 4,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        )
        self.capabilities = BackendCapabilities(
            can_abort=abort_on_disconnect,
            seeded=send_seed,
            logprobs=True,
            shares_prefix_cache=True,
            max_concurrency=max_concurrency,
            can_promote=True,
            counts_aborted_tokens=stream,
        )
        self._max_concurrency = max_concurrency
        self._slots: PriorityGate | None = None
        self._inflight: dict[str, Inflight] = {}
        self._aborted_tokens = 0

    @property
    def base_url(self) -> str:
        """The server URL (without `/v1`)."""
        return self._http.base_url

    # ------------------------------------------------------------------ generate

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """One completion per seed, in seed order (one request with `n=1` each)."""
        self._http.client()  # raises once closed
        if request.n == 0:
            return []
        state = begin_request(self._inflight, request, self.base_url)
        generated: dict[int, int] = {}  # continuation -> tokens streamed (or finished)
        coros: list[Coroutine[Any, Any, Completion]] = [
            self._one(request, i, state, generated) for i in range(request.n)
        ]
        try:
            return await run_children(
                state,
                coros,
                on_abandon=self._abandon,
                cancelled_error=lambda: self._cancelled(request.request_id),
            )
        except BaseException:  # cancelled or failed: every token generated is dropped
            if self.stream:
                self._aborted_tokens += sum(generated.values())
            raise
        finally:
            self._inflight.pop(request.request_id, None)

    async def aborted_tokens(self) -> int:
        """Tokens the server streamed for requests whose results were dropped (cancelled,
        or a sibling failed): a lower bound (see the module doc); 0 with stream=False."""
        return self._aborted_tokens

    def _cancelled(self, request_id: str) -> RequestCancelledError:
        return RequestCancelledError(
            f"request {request_id} was cancelled (connection to {self.base_url} dropped)"
        )

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

    async def _one(
        self, request: GenerationRequest, i: int, state: Inflight, generated: dict[int, int]
    ) -> Completion:
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        body = self._chat_body(request, i) if self.chat else self._completion_body(request, i)
        headers = {"X-Request-Id": state.rids[i]}
        async with self._slots_sem().slot(request.priority, request.request_id):
            if state.cancelled:
                raise self._cancelled(request.request_id)
            try:
                if self.stream:
                    data = await self._streamed(path, body, headers, generated, i)
                else:
                    data = await self._http.request_json(
                        "POST", path, json_body=body, headers=headers
                    )
            except SpexError as exc:
                if state.cancelled:
                    raise self._cancelled(request.request_id) from exc
                raise
        completion = self._parse(data, request, path, state)
        generated[i] = max(generated.get(i, 0), completion.completion_tokens)
        return completion

    async def _streamed(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        generated: dict[int, int],
        i: int,
    ) -> dict[str, Any]:
        """POST `body` as a stream; return the answer in the non-streamed shape, keeping
        `generated[i]` at the tokens streamed so far (see the module doc)."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        merged = _StreamedAnswer(chat=self.chat)
        events = _ServerSentEvents()
        try:
            async with self._http.client().stream(
                "POST", path, json=body, headers=headers
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._stream_refused(response, path)
                if "json" in response.headers.get("content-type", ""):
                    await response.aread()  # a server that ignored "stream": one answer
                    answer: dict[str, Any] = self._http.parse_json(response, path)
                    return answer
                # read on after [DONE], so that the connection can be reused
                async for name, payload in events.read(response.aiter_lines()):
                    self._take_event(merged, name, payload, path)
                    generated[i] = merged.tokens
        except httpx.HTTPError as exc:
            raise self._http.transport_error(exc, path) from exc
        if not merged.events:
            raise BackendRequestError(
                f"{self._http.kind} at {self.base_url} answered {path} with non-JSON "
                f"({one_line(' '.join(events.other), 60)!r}); check that the URL points at an "
                "OpenAI-compatible server"
            )
        if not merged.done and merged.finish_reason is None:
            raise TransientBackendError(
                f"{self.base_url} ended the stream of {path} before the answer finished "
                f"({merged.tokens} tokens in); check the server log"
            )
        return merged.answer()

    def _take_event(self, merged: _StreamedAnswer, name: str, payload: str, path: str) -> None:
        """Merge one server-sent event (`[DONE]`, a JSON chunk, or an error)."""
        if merged.done:
            return
        if payload == "[DONE]":
            merged.done = True
            return
        chunk: Any = None
        with contextlib.suppress(ValueError):
            chunk = json.loads(payload)
        if name == "error" or (isinstance(chunk, dict) and chunk.get("error")):
            detail = chunk.get("error", chunk) if isinstance(chunk, dict) else payload
            raise BackendRequestError(
                f"{self.base_url} failed on {path} mid-stream "
                f"({one_line(str(detail), 120)}); check the server log"
            )
        if not isinstance(chunk, dict):
            raise self._http.malformed(path, "JSON objects in its stream")
        merged.add(chunk)

    def _stream_refused(self, response: httpx.Response, path: str) -> SpexError:
        error = self._http.status_error(response, path)
        if response.status_code in (400, 422) and "stream" in response.text.lower():
            return BackendRequestError(
                f"{error} (the server refused a streamed request; pass stream=False to "
                "OpenAICompatBackend)"
            )
        return error

    def _common_body(self, request: GenerationRequest, i: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": 1,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if self.send_seed:
            body["seed"] = int(request.seeds[i])
        return body

    def _completion_body(self, request: GenerationRequest, i: int) -> dict[str, Any]:
        body = self._common_body(request, i)
        body["prompt"] = request.prompt
        top = requested_top_logprobs(request)
        if request.logprobs or top:
            body["logprobs"] = top  # 0: only the sampled tokens' logprobs
        body.update(self.extra_body)
        return body

    def chat_messages(self, request: GenerationRequest) -> list[dict[str, str]]:
        """The chat messages sent for `request` (see the module doc)."""
        messages = [
            {"role": _ROLES.get(role, role), "content": content}
            for role, content in request.messages
        ]
        if not messages:
            prompt = request.prompt
            if request.assistant_prefix and prompt.endswith(request.assistant_prefix):
                prompt = prompt[: -len(request.assistant_prefix)]
            messages = [{"role": "user", "content": prompt}]
        if request.assistant_prefix:
            messages.append({"role": "assistant", "content": request.assistant_prefix})
            if not self.continue_final_message:
                messages.append({"role": "user", "content": self.continue_instruction})
        return messages

    def _chat_body(self, request: GenerationRequest, i: int) -> dict[str, Any]:
        body = self._common_body(request, i)
        body["messages"] = self.chat_messages(request)
        if request.assistant_prefix and self.continue_final_message:
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        top = requested_top_logprobs(request)
        if request.logprobs or top:
            body["logprobs"] = True
            if top:
                body["top_logprobs"] = top
        body.update(self.extra_body)
        return body

    def _parse(
        self, data: Any, request: GenerationRequest, path: str, state: Inflight
    ) -> Completion:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._http.malformed(path, "a 'choices' list")
        choice = choices[0]
        token_logprobs: tuple[float, ...] = ()
        top: list[tuple[tuple[str, float], ...]] = []
        logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else None
        if self.chat:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
            if text is None:
                text = ""
            if logprobs is not None and isinstance(logprobs.get("content"), list):
                entries = [e for e in logprobs["content"] if isinstance(e, dict)]
                token_logprobs = tuple(
                    lp for e in entries if (lp := _num(e.get("logprob"))) is not None
                )
                for e in entries:
                    pairs = [
                        (str(t.get("token", "")), lp)
                        for t in e.get("top_logprobs") or []
                        if isinstance(t, dict) and (lp := _num(t.get("logprob"))) is not None
                    ]
                    top.append(tuple(sorted(pairs, key=lambda p: -p[1])))
        else:
            text = choice.get("text")
            if logprobs is not None:
                token_logprobs = tuple(
                    lp for v in logprobs.get("token_logprobs") or [] if (lp := _num(v)) is not None
                )
                for entry in logprobs.get("top_logprobs") or []:
                    pairs = (
                        [(str(k), lp) for k, v in entry.items() if (lp := _num(v)) is not None]
                        if isinstance(entry, dict)
                        else []
                    )
                    top.append(tuple(sorted(pairs, key=lambda p: -p[1])))
        if not isinstance(text, str):
            raise self._http.malformed(path, "the generated text")
        kind = _finish_kind(choice.get("finish_reason"))
        if kind == "abort":
            if state.cancelled:
                raise self._cancelled(request.request_id)
            raise RequestCancelledError(
                f"{self.base_url} aborted request {request.request_id} "
                f"({one_line(choice.get('stop_reason') or 'abort', 80)})"
            )
        matched = choice.get("stop_reason", choice.get("matched_stop"))
        text, cut = cut_at_stop(text, request.stop)
        if cut is not None:
            kind = "stop"
        stop_matched = cut or (matched if isinstance(matched, str) and matched else None)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        return make_completion(
            text=text,
            finish_reason=kind,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(cached or 0),
            stop_matched=stop_matched,
            token_logprobs=token_logprobs,
            top_logprobs=tuple(top),
        )

    # ------------------------------------------------------------------ cancel, health, close

    async def cancel(self, request_id: str) -> None:
        """Drop the connections of every continuation of `request_id`; unknown ids ignored."""
        state = self._inflight.get(request_id)
        if state is None or state.cancelled:
            return
        state.cancelled = True
        for task in state.tasks:
            task.cancel()

    async def served_models(self) -> list[str]:
        """Model names listed by `GET /v1/models`."""
        data = await self._http.request_json(
            "GET", "/v1/models", timeout=min(self._http.timeout, 30.0)
        )
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise self._http.malformed("/v1/models", "a 'data' list")
        return [str(e.get("id")) for e in entries if isinstance(e, dict) and e.get("id")]

    async def health(self) -> None:
        """Check that the server answers and serves `model` (`/v1/models`, else `/health`)."""
        response = await self._http.send("GET", "/v1/models", timeout=min(self._http.timeout, 30))
        if response.status_code == 404:
            response = await self._http.send("GET", "/health", timeout=min(self._http.timeout, 30))
            if response.status_code != 200:
                raise BackendUnavailableError(
                    f"OpenAI-compatible server at {self.base_url} has neither /v1/models nor a "
                    f"healthy /health (HTTP {response.status_code}: {server_message(response)}); "
                    "check --backend-url"
                )
            return
        if response.status_code != 200:
            err = self._http.status_error(response, "/v1/models")
            raise BackendUnavailableError(str(err))
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendUnavailableError(
                f"{self.base_url}/v1/models did not answer JSON "
                f"({one_line(response.text, 60)!r}); check that --backend-url points at an "
                "OpenAI-compatible server"
            ) from exc
        entries = data.get("data") if isinstance(data, dict) else None
        served = [str(e.get("id")) for e in entries or [] if isinstance(e, dict) and e.get("id")]
        if served and self.model not in served:
            shown = ", ".join(served[:5])
            raise BackendUnavailableError(
                f"OpenAI-compatible server at {self.base_url} does not serve model "
                f"{self.model!r} (it serves {shown}); pass --model {served[0]}"
            )

    async def aclose(self) -> None:
        """Cancel what is in flight and close the connections; idempotent."""
        if self._http.closed:
            return
        for state in list(self._inflight.values()):
            state.cancelled = True
            for task in state.tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            pending = [t for s in self._inflight.values() for t in s.tasks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        await self._http.aclose()
