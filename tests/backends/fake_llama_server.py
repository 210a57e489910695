"""A fake llama-server `/completion` that streams the way llama.cpp's server does.

- `POST /completion` with `stream: true`: server-sent events `data: {json}\\n\\n`, one
  per decoded token and continuation: `index`, `content`, `tokens`, `stop: false`,
  `id_slot`, `tokens_predicted` (tokens decoded so far for that index) and
  `tokens_evaluated` (tools/server/server-task.cpp,
  `server_task_result_cmpl_partial::to_json_non_oaicompat`); then one final event
  per index with `stop: true`, `stop_type` and `tokens_predicted`, cut down to
  `response_fields` (`server_task_result_cmpl_final::to_json_non_oaicompat`).
  `n_cmpl` continuations are decoded together (their events interleave).
- A closed connection ends the decoding (llama-server notices it on its next write).
- `stall_after`: decode that many tokens per continuation, then wait for the client
  to go (a long generation the test cancels). `fail_seeds`: a call with such a seed
  sends `fail_after` tokens, then an `error` event.
- `decoded`: per call, the tokens each continuation decoded (and sent) before it ended.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from backends.fake_http import FakeServer, Handler


class FakeLlamaServer(FakeServer):
    """Fake llama-server; see the module doc."""

    def __init__(
        self,
        *,
        token_delay: float = 0.002,
        stall_after: int | None = None,
        fail_seeds: frozenset[int] = frozenset(),
        fail_after: int = 2,
        fail_delay: float = 0.3,
    ) -> None:
        super().__init__()
        self.token_delay = token_delay
        self.stall_after = stall_after
        self.fail_seeds = fail_seeds
        self.fail_after = fail_after
        self.fail_delay = fail_delay
        self.lock = threading.Lock()
        self.decoded: list[list[int]] = []
        self.routes[("POST", "/completion")] = self._completion
        self.routes[("GET", "/health")] = lambda h, _b: h.send_json(200, {"status": "ok"})

    def _event(self, h: Handler, event: dict[str, Any]) -> None:
        h.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        h.wfile.flush()

    def _completion(self, h: Handler, body: Any) -> None:
        n = int(body.get("n_cmpl", 1))
        n_predict = int(body.get("n_predict", 16))
        fields = body.get("response_fields") or []
        failing = int(body.get("seed", 0)) in self.fail_seeds
        counts = [0] * n
        with self.lock:
            self.decoded.append(counts)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        try:
            for pos in range(n_predict):
                if failing and pos == self.fail_after:
                    self.closing.wait(self.fail_delay)
                    self._event(h, {"error": {"code": 500, "message": "fake failure"}})
                    return
                if self.stall_after is not None and pos == self.stall_after:
                    while not h.client_gone() and not self.closing.wait(0.01):
                        pass
                    return
                if self.closing.wait(self.token_delay):
                    return
                for index in range(n):
                    counts[index] += 1
                    self._event(
                        h,
                        {
                            "index": index,
                            "content": f" w{pos}",
                            "tokens": [100 + pos],
                            "stop": False,
                            "id_slot": index,
                            "tokens_predicted": counts[index],
                            "tokens_evaluated": 7,
                        },
                    )
            for index in range(n):
                final = {
                    "index": index,
                    "content": "",
                    "stop": True,
                    "stop_type": "limit",
                    "stopping_word": "",
                    "tokens_predicted": counts[index],
                    "tokens_evaluated": 7,
                    "timings": {"prompt_n": 7, "predicted_n": counts[index], "cache_n": 0},
                }
                self._event(h, {k: v for k, v in final.items() if not fields or k in fields})
        except OSError:  # the client closed the connection: decoding stops here
            return
