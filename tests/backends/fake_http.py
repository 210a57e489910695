"""Shared pieces of the fake LLM servers: a tokenizer, a toy language model, an HTTP base.

The toy model is deterministic given (context, seed, position), like SGLang's
seeded sampler (noise = hash(seed, position)); a seed of None draws fresh
randomness, like an engine that ignores seeds. Special contexts:

- ends with the PRM step tag "ки": next token "+" (good) / "-" (bad) with
  P(good | label) = 0.2 if the step since the previous tag says "wrong", else
  0.8; half the mass is on other tokens, so raw probabilities need normalising.
- ends with "Answer:" (optionally followed by a chat "assistant:" line): a
  judge answer " Yes" / " No" / " Maybe" (0.6/0.3/0.1, or 0.2/0.7/0.1 when the
  judged step says "wrong").
- otherwise words, a newline now and then, and EOS only after 300 generated tokens.

The HTTP base runs a stdlib `ThreadingHTTPServer` on 127.0.0.1, port 0, in a
thread, with fault injection (500, garbage, hang, 503, drop) per path.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import select
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG = "ки"
TOKEN_RE = re.compile(r"\s+|[^\s]+")
WORDS = (
    " alpha",
    " beta",
    " gamma",
    " delta",
    " step",
    " so",
    " then",
    " 1",
    " 2",
    " 3",
    " +",
    " =",
    ".",
)


class FakeTokenizer:
    """Whitespace-run / non-whitespace-run tokenizer with ids assigned on first sight."""

    BOS = 1
    EOS = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._toks: dict[int, str] = {self.BOS: "<s>", self.EOS: "</s>"}

    def id_of(self, tok: str) -> int:
        """The id of a token string (assigned if new)."""
        with self._lock:
            if tok not in self._ids:
                new = 100 + len(self._ids)
                self._ids[tok] = new
                self._toks[new] = tok
            return self._ids[tok]

    def tok(self, token_id: int) -> str:
        """The string of a token id."""
        return self._toks.get(token_id, f"<{token_id}>")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text` (BOS first when `add_special_tokens`)."""
        ids = [self.id_of(t) for t in TOKEN_RE.findall(text)]
        return [self.BOS, *ids] if add_special_tokens else ids

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens skipped."""
        return "".join(self.tok(i) for i in ids if i not in (self.BOS, self.EOS))


def _judge_step(context: str) -> str:
    if "New step:" in context:
        return context.rsplit("New step:", 1)[1]
    return context


def next_distribution(context: str, generated: int) -> list[tuple[str, float]]:
    """The toy model's next-token distribution, most likely first."""
    stripped = context.rstrip()
    if context.endswith(TAG):
        step = context[: -len(TAG)]
        if TAG in step:
            step = step.rsplit(TAG, 1)[1]
        p_good = 0.2 if "wrong" in step else 0.8
        dist = [("+", 0.5 * p_good), ("-", 0.5 * (1 - p_good)), ("\n", 0.3), (" the", 0.2)]
    elif stripped.endswith("Answer:") or re.search(r"Answer:\s*\n?assistant:$", stripped):
        wrong = "wrong" in _judge_step(context)
        dist = (
            [(" No", 0.7), (" Yes", 0.2), (" Maybe", 0.1)]
            if wrong
            else [(" Yes", 0.6), (" No", 0.3), (" Maybe", 0.1)]
        )
    else:
        eos = 0.03 if generated >= 300 else 0.0
        newline = 0.08
        rest = 1.0 - eos - newline
        weights = [len(WORDS) - i for i in range(len(WORDS))]
        total = sum(weights)
        dist = [(w, rest * k / total) for w, k in zip(WORDS, weights, strict=True)]
        dist.append(("\n", newline))
        if eos:
            dist.append(("</s>", eos))
    return sorted(dist, key=lambda p: -p[1])


def uniform(context: str, seed: int | None, position: int) -> float:
    """The sampling noise: a pure function of (context, seed, position) when seeded."""
    if seed is None:
        return random.random()
    digest = hashlib.sha256(f"{context}\x00{seed}\x00{position}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample(dist: list[tuple[str, float]], u: float, temperature: float, top_p: float) -> str:
    """Sample a token with temperature and nucleus filtering (temperature 0 = argmax)."""
    if temperature <= 0:
        return dist[0][0]
    scaled = [(t, p ** (1.0 / temperature)) for t, p in dist if p > 0]
    total = sum(p for _, p in scaled)
    scaled = sorted(((t, p / total) for t, p in scaled), key=lambda x: -x[1])
    kept, mass = [], 0.0
    for t, p in scaled:
        kept.append((t, p))
        mass += p
        if mass >= top_p:
            break
    x = u * mass
    for t, p in kept:
        x -= p
        if x <= 0:
            return t
    return kept[-1][0]


@dataclass
class Step:
    """One generated token."""

    token: str
    logprob: float
    top: list[tuple[str, float]]


def step(
    prompt: str,
    generated: str,
    n_generated: int,
    seed: int | None,
    temperature: float,
    top_p: float,
) -> Step:
    """Generate the next token after prompt + generated."""
    context = prompt + generated
    dist = next_distribution(context, n_generated)
    token = sample(dist, uniform(prompt, seed, n_generated), temperature, top_p)
    probs = dict(dist)
    return Step(token, math.log(probs[token]), [(t, math.log(p)) for t, p in dist])


def earliest_stop(text: str, stops: list[str]) -> tuple[int, str] | None:
    """(index, stop) of the earliest stop string in text."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s) if s else -1
        if i != -1 and (best is None or i < best[0]):
            best = (i, s)
    return best


# --------------------------------------------------------------------------- HTTP base


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning FakeServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms stalls)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr logging."""

    def do_GET(self) -> None:
        """Dispatch a GET."""
        self.server.app.dispatch(self, "GET")

    def do_POST(self) -> None:
        """Dispatch a POST."""
        self.server.app.dispatch(self, "POST")

    def read_json(self) -> Any:
        """The request body as JSON (None if empty)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def send_raw(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        """Send a complete response."""
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code: int, obj: Any) -> None:
        """Send a JSON response."""
        self.send_raw(code, json.dumps(obj).encode())

    def client_gone(self) -> bool:
        """True once the client closed the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs under concurrent connects (1 s retries)
    app: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-answer (cancel tests) are normal here."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | OSError):
            return
        super().handle_error(request, client_address)


Route = Callable[[Handler, Any], None]


class FakeServer:
    """A fake server on 127.0.0.1:<free port>, run in a thread (use as a context manager).

    Attributes:
        fault: None or "500" / "garbage" / "hang" / "503" / "drop", applied to `fault_paths`.
        requests: (method, path, body) of every request received.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.fault: str | None = None
        self.fault_paths: set[str] = set()
        self.requests: list[tuple[str, str, Any]] = []
        self.closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server bound."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, kind: str | None, *paths: str) -> None:
        """Inject a fault on `paths` (None clears it)."""
        self.fault = kind
        self.fault_paths = set(paths)

    def dispatch(self, handler: Handler, method: str) -> None:
        """Route one request, applying the injected fault first."""
        path = handler.path.split("?", 1)[0]
        body: Any = None
        if method == "POST":
            try:
                body = handler.read_json()
            except ValueError:
                handler.send_json(400, {"error": {"message": "invalid JSON body"}})
                return
        self.requests.append((method, path, body))
        if self.fault and path in self.fault_paths and self._apply_fault(handler):
            return
        route = self.routes.get((method, path))
        if route is None:
            handler.send_json(404, {"detail": "Not Found"})
            return
        route(handler, body)

    def _apply_fault(self, handler: Handler) -> bool:
        kind = self.fault
        if kind == "500":
            handler.send_raw(
                500,
                b'Traceback (most recent call last):\n  File "x.py", line 1\n'
                b"RuntimeError: CUDA error: device-side assert triggered\n",
                "text/plain",
            )
        elif kind == "garbage":
            handler.send_raw(200, b"<html>\n<body>proxy login</body>\n</html>", "text/html")
        elif kind == "503":
            handler.send_json(503, {"error": {"message": "Server is starting\nplease wait"}})
        elif kind == "hang":
            self.closing.wait(30)
            handler.close_connection = True
        elif kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            return False
        return True


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
