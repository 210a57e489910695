"""A fake OpenAI-compatible server (vLLM-like): completions, chat, models, abort on disconnect.

- `GET /v1/models`, `GET /health`.
- `POST /v1/completions`: `model` (404 if not served), `prompt`, `max_tokens`,
  `stop`, `temperature`, `top_p`, `seed` (honoured), `n`, `logprobs` (int:
  `tokens` / `token_logprobs` / `top_logprobs` dicts), `usage` with
  `prompt_tokens_details.cached_tokens`; `finish_reason` "stop" / "length",
  `stop_reason` = the matched stop string (vLLM).
- `POST /v1/chat/completions`: `messages`, `logprobs` (bool) + `top_logprobs`,
  `continue_final_message` / `add_generation_prompt` (vLLM extensions).
- `stream: true` (both endpoints): server-sent events `data: {json}\n\n`, one chunk
  per token (completions: `text` + `logprobs`; chat: `delta.content` + `logprobs.content`),
  a final chunk with `finish_reason`, a usage chunk (`choices: []`) when
  `stream_options.include_usage`, then `data: [DONE]` (vLLM's shape).
- Generation is token by token (`token_delay` s each); when the client closes the
  connection, the request stops and its `X-Request-Id` goes to `aborted`.
  `generated[rid]` counts the tokens generated for each request so far.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from backends.fake_http import FakeServer, FakeTokenizer, Handler, earliest_stop, step

Emit = Callable[[str, float, list[tuple[str, float]]], None]
"""Streams one generated token: (token, logprob, top alternatives)."""


class FakeOpenAIServer(FakeServer):
    """Fake vLLM-style OpenAI server; see the module doc.

    Attributes:
        aborted: X-Request-Id of requests stopped because the client disconnected.
        bodies: (path, body) of every generation request.
    """

    def __init__(self, *, model: str = "fake-model", token_delay: float = 0.002) -> None:
        super().__init__()
        self.model = model
        self.token_delay = token_delay
        self.tokenizer = FakeTokenizer()
        self.aborted: list[str] = []
        self.completed: list[str] = []
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.generated: dict[str, int] = {}
        self.routes[("GET", "/v1/models")] = self._models
        self.routes[("GET", "/health")] = lambda h, _b: h.send_raw(200, b"")
        self.routes[("POST", "/v1/completions")] = self._completions
        self.routes[("POST", "/v1/chat/completions")] = self._chat

    def _models(self, h: Handler, _body: Any) -> None:
        h.send_json(200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _error(self, h: Handler, code: int, message: str) -> None:
        h.send_json(
            code, {"object": "error", "message": message, "type": "BadRequest", "code": code}
        )

    def _check(self, h: Handler, body: Any) -> bool:
        if not isinstance(body, dict):
            self._error(h, 400, "body must be an object")
            return False
        if body.get("model") != self.model:
            h.send_json(
                404,
                {
                    "error": {
                        "message": f"The model `{body.get('model')}` does not exist.",
                        "type": "NotFoundError",
                        "code": 404,
                    }
                },
            )
            return False
        return True

    def _run(
        self,
        h: Handler,
        prompt: str,
        body: dict[str, Any],
        top_k: int,
        emit: Emit | None = None,
    ) -> dict[str, Any] | None:
        """Generate one choice; None if the client disconnected. `emit(token, logprob,
        top)` streams each token as it is generated."""
        rid = h.headers.get("X-Request-Id") or uuid.uuid4().hex
        max_tokens = int(body.get("max_tokens") or 16)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        seed = body.get("seed")
        temperature = float(body.get("temperature", 1.0))
        top_p = float(body.get("top_p", 1.0))
        tokens: list[str] = []
        lps: list[float] = []
        tops: list[list[tuple[str, float]]] = []
        finish, stop_reason, text = "length", None, None
        for pos in range(max_tokens):
            if self.closing.wait(self.token_delay):
                return None
            if h.client_gone():
                self.aborted.append(rid)
                return None
            s = step(prompt, "".join(tokens), pos, seed, temperature, top_p)
            lps.append(s.logprob)
            tops.append(s.top[:top_k])
            self.generated[rid] = pos + 1
            if s.token == "</s>":
                tokens.append("")
                finish = "stop"
                break
            tokens.append(s.token)
            if emit is not None:
                try:
                    emit(s.token, s.logprob, s.top[:top_k])
                except OSError:  # the client closed the connection mid-stream
                    self.aborted.append(rid)
                    return None
            hit = earliest_stop("".join(tokens), stops)
            if hit is not None:
                text = "".join(tokens)[: hit[0]]
                finish, stop_reason = "stop", hit[1]
                break
        self.completed.append(rid)
        return {
            "text": "".join(tokens) if text is None else text,
            "tokens": tokens,
            "logprobs": lps,
            "tops": tops,
            "finish_reason": finish,
            "stop_reason": stop_reason,
            "prompt_tokens": len(self.tokenizer.encode(prompt)),
        }

    def _usage(self, out: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt_tokens": out["prompt_tokens"],
            "completion_tokens": len(out["tokens"]),
            "total_tokens": out["prompt_tokens"] + len(out["tokens"]),
            "prompt_tokens_details": {"cached_tokens": 0},
        }

    def _completions(self, h: Handler, body: Any) -> None:
        if not self._check(h, body):
            return
        self.bodies.append(("/v1/completions", body))
        self.headers_seen.append(dict(h.headers.items()))
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            self._error(h, 400, "prompt must be a string")
            return
        k = body.get("logprobs")
        if body.get("stream"):
            self._stream_completion(h, prompt, body, k)
            return
        out = self._run(h, prompt, body, int(k or 0))
        if out is None:
            h.close_connection = True
            return
        choice: dict[str, Any] = {
            "index": 0,
            "text": out["text"],
            "logprobs": None,
            "finish_reason": out["finish_reason"],
            "stop_reason": out["stop_reason"],
        }
        if k is not None:
            choice["logprobs"] = {
                "tokens": out["tokens"],
                "token_logprobs": out["logprobs"],
                "top_logprobs": [dict(t) for t in out["tops"]] if k else None,
                "text_offset": [],
            }
        h.send_json(
            200,
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [choice],
                "usage": self._usage(out),
            },
        )

    def _chat(self, h: Handler, body: Any) -> None:
        if not self._check(h, body):
            return
        self.bodies.append(("/v1/chat/completions", body))
        self.headers_seen.append(dict(h.headers.items()))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(h, 400, "messages must be a non-empty list")
            return
        cont = bool(body.get("continue_final_message"))
        if cont and messages[-1].get("role") != "assistant":
            self._error(h, 400, "continue_final_message needs a final assistant message")
            return
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        prompt = prompt[:-1] if cont else prompt + "assistant:"
        top_k = int(body.get("top_logprobs") or 0)
        if body.get("stream"):
            self._stream_chat(h, prompt, body, top_k)
            return
        out = self._run(h, prompt, body, top_k)
        if out is None:
            h.close_connection = True
            return
        logprobs = None
        if body.get("logprobs"):
            logprobs = {
                "content": [
                    {
                        "token": t,
                        "logprob": lp,
                        "bytes": list(t.encode()),
                        "top_logprobs": [
                            {"token": tt, "logprob": tlp, "bytes": list(tt.encode())}
                            for tt, tlp in top
                        ],
                    }
                    for t, lp, top in zip(out["tokens"], out["logprobs"], out["tops"], strict=True)
                ]
            }
        h.send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": out["text"]},
                        "logprobs": logprobs,
                        "finish_reason": out["finish_reason"],
                        "stop_reason": out["stop_reason"],
                    }
                ],
                "usage": self._usage(out),
            },
        )

    # ------------------------------------------------------------------ streaming

    def _event(self, h: Handler, event: Any) -> None:
        data = event if isinstance(event, str) else json.dumps(event)
        h.wfile.write(f"data: {data}\n\n".encode())
        h.wfile.flush()

    def _stream(
        self,
        h: Handler,
        prompt: str,
        body: dict[str, Any],
        top_k: int,
        choice_of: Callable[[str, float, list[tuple[str, float]]], dict[str, Any]],
        final: dict[str, Any],
    ) -> None:
        """Stream one choice: a chunk per token (`choice_of(token, logprob, top)`),
        then `final` with the finish reason, the usage chunk and `[DONE]`."""
        kind = "chat.completion.chunk" if "delta" in final else "text_completion"
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

        def emit(token: str, lp: float, top: list[tuple[str, float]]) -> None:
            self._event(h, {"object": kind, "choices": [choice_of(token, lp, top)]})

        try:
            out = self._run(h, prompt, body, top_k, emit)
            if out is None:
                return
            last = {**final, "finish_reason": out["finish_reason"]}
            last["stop_reason"] = out["stop_reason"]
            self._event(h, {"object": kind, "choices": [last], "usage": None})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event(h, {"object": kind, "choices": [], "usage": self._usage(out)})
            self._event(h, "[DONE]")
        except OSError:  # the client closed the connection
            return

    def _stream_completion(self, h: Handler, prompt: str, body: dict[str, Any], k: Any) -> None:
        def choice(token: str, lp: float, top: list[tuple[str, float]]) -> dict[str, Any]:
            logprobs = None
            if k is not None:
                logprobs = {
                    "tokens": [token],
                    "token_logprobs": [lp],
                    "top_logprobs": [dict(top)] if k else None,
                }
            return {"index": 0, "text": token, "logprobs": logprobs, "finish_reason": None}

        final = {"index": 0, "text": "", "logprobs": None}
        self._stream(h, prompt, body, int(k or 0), choice, final)

    def _stream_chat(self, h: Handler, prompt: str, body: dict[str, Any], top_k: int) -> None:
        def choice(token: str, lp: float, top: list[tuple[str, float]]) -> dict[str, Any]:
            logprobs = None
            if body.get("logprobs"):
                entry = {
                    "token": token,
                    "logprob": lp,
                    "top_logprobs": [{"token": t, "logprob": v} for t, v in top],
                }
                logprobs = {"content": [entry]}
            return {"index": 0, "delta": {"content": token}, "logprobs": logprobs}

        final = {"index": 0, "delta": {}, "logprobs": None}
        self._stream(h, prompt, body, top_k, choice, final)
