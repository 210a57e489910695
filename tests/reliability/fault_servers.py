"""Real local HTTP servers (SGLang and OpenAI protocols) that solve toy math and inject faults.

Generation follows `toy_math_script` (the same text the in-process ScriptedBackend
writes for a seed), so searches through these servers reach correct answers;
tokens stream out at `token_delay` seconds each and an abort (SGLang) or a
client hang-up (OpenAI) stops a request. Faults hit generation requests at a
set `rate` with a seeded random draw:

    500        HTTP 500 with a traceback body
    429        HTTP 429 with `Retry-After: <retry_after>`
    503        HTTP 503 (server overloaded)
    reset      the TCP connection is reset (RST) before any answer
    hang       no answer until the server stops (the client's timeout must fire)
    truncated  HTTP 200 whose JSON body is cut short
    empty      a well-formed answer with empty text
    long       a well-formed answer with 100,000 characters of text
    utf8       HTTP 200 whose body is not valid UTF-8
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time
import uuid
from typing import Any

from backends.fake_http import Handler
from backends.fake_openai_server import Emit, FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer, _Req

from spex_graph.backends.base import GenerationRequest
from spex_graph.backends.fake import ScriptedBackend, toy_math_script

FAULTS = ("500", "429", "503", "reset", "hang", "truncated", "empty", "long", "utf8")
LONG_TEXT = "x" * 100_000


class FaultPlan:
    """Which generation requests fail, and how (thread-safe, seeded)."""

    def __init__(self, kind: str | None = None, rate: float = 0.0, seed: int = 0) -> None:
        assert kind is None or kind in FAULTS, kind
        self.kind = kind
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0
        self.retry_after = "0.05"

    def draw(self, rid: str | None = None) -> str | None:
        """The fault for the next request, or None.

        A request's third and later tries (`<id>.r2-0000`, ...) are never faulted, so
        with the client's 3 retries every retryable fault is survivable and the
        tests are deterministic in outcome (not only likely to pass).
        """
        if self.kind is None:
            return None
        retry = re.search(r"\.r(\d+)-\d{4}$", rid or "")
        if retry is not None and int(retry.group(1)) >= 2:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            self.injected += 1
            return self.kind


def scripted_text(prompt: str, seed: int, stops: list[str], max_tokens: int) -> tuple[str, str]:
    """(text, finish) the toy math script writes after `prompt` for `seed`."""
    prefix = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]
    request = GenerationRequest(
        prompt=prompt,
        seeds=(seed,),
        request_id="x",
        stop=tuple(stops),
        max_tokens=max_tokens,
        assistant_prefix=prefix,
    )
    completion = ScriptedBackend(script=toy_math_script())._one(request, seed)
    return completion.text, completion.finish_reason


def send_fault(h: Handler, kind: str, plan: FaultPlan, closing: threading.Event) -> bool:
    """Send a transport-level fault; False for faults that need a protocol body."""
    if kind == "500":
        h.send_raw(
            500, b"Traceback (most recent call last):\nRuntimeError: CUDA error\n", "text/plain"
        )
    elif kind == "429":
        h.send_response(429)
        h.send_header("Content-Type", "application/json")
        h.send_header("Retry-After", plan.retry_after)
        body = b'{"error": {"message": "rate limit exceeded"}}'
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    elif kind == "503":
        h.send_json(503, {"error": {"message": "server overloaded"}})
    elif kind == "reset":
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()
    elif kind == "hang":
        closing.wait(60)
        h.close_connection = True
    elif kind == "truncated":
        body = b'{"text": "Step 1: comb'
        h.send_raw(200, body)
    elif kind == "utf8":
        h.send_raw(200, b'{"text": "\xff\xfe bad \xc3\x28"}')
    else:
        return False
    return True


class FaultySGLangServer(FakeSGLangServer):
    """SGLang-protocol server writing toy math, with a FaultPlan on /generate."""

    def __init__(self, plan: FaultPlan | None = None, token_delay: float = 0.001) -> None:
        super().__init__(token_delay=token_delay, max_running=256)
        self.plan = plan or FaultPlan()
        self.finished: list[str] = []
        self.arrivals: list[tuple[float, str, str | None]] = []
        """(time, rid, fault) of every /generate request."""
        self._local = threading.local()
        self.routes[("POST", "/generate")] = self._faulty_generate

    def _faulty_generate(self, h: Handler, body: Any) -> None:
        rid = body.get("rid") if isinstance(body, dict) else None
        kind = self.plan.draw(rid)
        self.arrivals.append((time.monotonic(), str(rid), kind))
        if kind is not None and send_fault(h, kind, self.plan, self.closing):
            return
        self._local.forced = kind  # empty / long: a well-formed answer with odd text
        self._generate(h, body)

    def _run(self, h: Handler, body: dict[str, Any], params: dict[str, Any], rid: str) -> Any:
        prompt = str(body.get("text", ""))
        stops = params.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        seed = int(params.get("sampling_seed", 0))
        text, finish = scripted_text(prompt, seed, stops, int(params.get("max_new_tokens", 128)))
        forced = getattr(self._local, "forced", None)
        if forced == "empty":
            text = ""
        elif forced == "long":
            text = LONG_TEXT
        n_tokens = max(1, len(text.split()))
        req = _Req(rid, running=True)
        with self.lock:
            self.live[rid] = req
        finish_reason: dict[str, Any] = (
            {"type": "stop", "matched": stops[0] if stops else 2}
            if finish == "stop"
            else {"type": "length", "length": n_tokens}
        )
        try:
            for _ in range(min(n_tokens, 64)):
                if req.aborted or self.closing.wait(self.token_delay):
                    finish_reason = {"type": "abort", "message": "Aborted", "status_code": None}
                    text = ""
                    break
        finally:
            with self.lock:
                self.live.pop(rid, None)
                (self.aborted if req.aborted else self.finished).append(rid)
        meta: dict[str, Any] = {
            "id": rid,
            "finish_reason": finish_reason,
            "prompt_tokens": max(1, len(prompt.split())),
            "completion_tokens": n_tokens,
            "cached_tokens": 0,
            "e2e_latency": 0.0,
        }
        if body.get("return_logprob"):
            meta["output_token_logprobs"] = [[-0.1, 5, None] for _ in range(n_tokens)]
        return {"text": text, "output_ids": [5] * n_tokens, "meta_info": meta}


class FaultyOpenAIServer(FakeOpenAIServer):
    """OpenAI-protocol server writing toy math, with a FaultPlan on /v1/completions."""

    def __init__(self, plan: FaultPlan | None = None, token_delay: float = 0.001) -> None:
        super().__init__(token_delay=token_delay)
        self.plan = plan or FaultPlan()
        self._local = threading.local()
        self.routes[("POST", "/v1/completions")] = self._faulty_completions

    def _faulty_completions(self, h: Handler, body: Any) -> None:
        kind = self.plan.draw(h.headers.get("X-Request-Id"))
        if kind is not None and send_fault(h, kind, self.plan, self.closing):
            return
        self._local.forced = kind
        self._completions(h, body)

    def _run(
        self, h: Handler, prompt: str, body: dict[str, Any], top_k: int, emit: Emit | None = None
    ) -> dict[str, Any] | None:
        rid = h.headers.get("X-Request-Id") or uuid.uuid4().hex
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        seed = int(body.get("seed") or 0)
        text, finish = scripted_text(prompt, seed, stops, int(body.get("max_tokens") or 16))
        forced = getattr(self._local, "forced", None)
        if forced == "empty":
            text = ""
        elif forced == "long":
            text = LONG_TEXT
        tokens = text.split(" ") if text else [""]
        pieces = [t if i == 0 else " " + t for i, t in enumerate(tokens)]
        for i in range(len(tokens)):
            if i < 64 and self.closing.wait(self.token_delay):
                return None
            if i < 64 and h.client_gone():
                self.aborted.append(rid)
                return None
            if emit is not None and pieces[i]:
                emit(pieces[i], -0.1, [])
        self.completed.append(rid)
        return {
            "text": text,
            "tokens": tokens,
            "logprobs": [-0.1] * len(tokens),
            "tops": [[] for _ in tokens],
            "finish_reason": finish,
            "stop_reason": stops[0] if finish == "stop" and stops else None,
            "prompt_tokens": max(1, len(prompt.split())),
        }


def wait_idle(server: FakeSGLangServer, timeout: float = 5.0) -> None:
    """Wait until the server has no request running."""
    deadline = time.monotonic() + timeout
    while server.live and time.monotonic() < deadline:
        time.sleep(0.02)
