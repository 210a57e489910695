"""A fake OpenAI-compatible server (vLLM-like): completions, chat, models, abort on disconnect.

- `GET /v1/models`, `GET /health`.
- `POST /v1/completions`: `model` (404 if not served), `prompt`, `max_tokens`,
  `stop`, `temperature`, `top_p`, `seed` (honoured), `n`, `logprobs` (int:
  `tokens` / `token_logprobs` / `top_logprobs` dicts), `usage` with
  `prompt_tokens_details.cached_tokens`; `finish_reason` "stop" / "length",
  `stop_reason` = the matched stop string (vLLM).
- `POST /v1/chat/completions`: `messages`, `logprobs` (bool) + `top_logprobs`,
  `continue_final_message` / `add_generation_prompt` (vLLM extensions).
- Generation is token by token (`token_delay` s each); when the client closes the
  connection, the request stops and its `X-Request-Id` goes to `aborted`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from backends.fake_http import FakeServer, FakeTokenizer, Handler, earliest_stop, step


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
        self, h: Handler, prompt: str, body: dict[str, Any], top_k: int
    ) -> dict[str, Any] | None:
        """Generate one choice; None if the client disconnected."""
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
            if s.token == "</s>":
                tokens.append("")
                finish = "stop"
                break
            tokens.append(s.token)
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
