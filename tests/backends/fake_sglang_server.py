"""A fake SGLang server that follows the documented native HTTP API (/work/shared/SGLANG.md).

- `POST /generate`: exactly one of `text` / `input_ids`; strict `sampling_params`
  (unknown key => HTTP 400 naming it; `sampling_seed` only in the "new" version,
  honoured only with `deterministic=True`); `rid`; `n>1` children get fresh
  uuid rids; `return_logprob`, `logprob_start_len`, `top_logprobs_num`,
  `token_ids_logprob`, `return_text_in_logprobs` with SGLang's layouts (input
  lists start with None, the last prompt position lives in the output lists);
  `finish_reason` dicts (stop+matched, length, abort); token-by-token generation
  with `token_delay` seconds per token so cancellation is testable; at most
  `max_running` requests run, the rest wait in a queue (in no set order, or with
  `priority_scheduling` highest `priority` first, then first come, as
  `--enable-priority-scheduling`;
  `abort_on_priority` answers a request carrying a priority without it with
  SGLang's 503 abort, as `--abort-on-priority-when-disabled`); `accept_delay`
  delays registering a request (so an abort can overtake it, and be dropped).
- `POST /abort_request {"rid", "abort_all"}`: always 200; only an exact rid the
  server holds is accepted, and then every live rid starting with it is
  aborted; a queued request is popped at once, a running one finishes after one
  more token; its client gets a 200 with `finish_reason.type == "abort"` and
  `meta_info.completion_tokens` = the tokens it generated before it stopped.
- `GET /health`, `/health_generate`; `/server_info` (new) and `/get_server_info`;
  `/v1/loads` (new) or `/get_load` (old); `POST /v1/score` (new: per-tag
  `score_extraction_token` rows; old: last position only); `POST /tokenize`
  and `/v1/tokenize` (new only).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from backends.fake_http import (
    TOKEN_RE,
    FakeServer,
    FakeTokenizer,
    Handler,
    earliest_stop,
    next_distribution,
    step,
)

SAMPLING_KEYS = {
    "max_new_tokens",
    "stop",
    "stop_token_ids",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "min_new_tokens",
    "n",
    "json_schema",
    "regex",
    "ebnf",
    "ignore_eos",
    "no_stop_trim",
    "logit_bias",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "custom_params",
}


@dataclass
class _Req:
    rid: str
    priority: int = 0
    arrival: int = 0
    aborted: bool = False
    running: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class FakeSGLangServer(FakeServer):
    """Fake SGLang "new" (0.5.23) or "old" (0.5.2) server; see the module doc.

    Attributes:
        aborted: rids whose generation was aborted.
        completion_tokens: tokens each rid generated, as its answer reports them
            (also when the client has gone).
        abort_calls: bodies of every `/abort_request`.
        generate_bodies: bodies of every `/generate`.
        load_reports: running/waiting counters visible through the load endpoints.
    """

    def __init__(
        self,
        *,
        version: str = "new",
        deterministic: bool = True,
        token_delay: float = 0.002,
        max_running: int = 32,
        accept_delay: float = 0.0,
        priority_scheduling: bool = False,
        abort_on_priority: bool = False,
        server_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.server_args = dict(server_args or {})
        self.accept_delay = accept_delay
        self.priority_scheduling = priority_scheduling
        self.abort_on_priority = abort_on_priority
        self._arrivals = 0
        assert version in ("new", "old")
        self.version = version
        self.deterministic = deterministic
        self.token_delay = token_delay
        self.max_running = max_running
        self.tokenizer = FakeTokenizer()
        self.lock = threading.Condition()
        self.live: dict[str, _Req] = {}
        self.aborted: list[str] = []
        self.completion_tokens: dict[str, int] = {}
        self.abort_calls: list[dict[str, Any]] = []
        self.generate_bodies: list[dict[str, Any]] = []
        self._recent_prompts: list[list[int]] = []
        r = self.routes
        r[("POST", "/generate")] = self._generate
        r[("POST", "/abort_request")] = self._abort
        r[("GET", "/health")] = self._health
        r[("GET", "/health_generate")] = self._health
        r[("GET", "/get_server_info")] = self._server_info
        r[("POST", "/v1/score")] = self._score
        if version == "new":
            r[("GET", "/server_info")] = self._server_info
            r[("GET", "/v1/loads")] = self._loads
            r[("POST", "/tokenize")] = self._tokenize
            r[("POST", "/v1/tokenize")] = self._tokenize
        else:
            r[("GET", "/get_load")] = self._get_load

    # ------------------------------------------------------------------ info, load, health

    def _health(self, h: Handler, _body: Any) -> None:
        h.send_raw(200, b"")

    def _server_info(self, h: Handler, _body: Any) -> None:
        info: dict[str, Any] = {
            "version": "0.5.23" if self.version == "new" else "0.5.2",
            "model_path": "fake/model",
            "max_total_num_tokens": 100_000,
        }
        if self.version == "new":
            info["enable_deterministic_inference"] = self.deterministic
        info.update(self.server_args)
        h.send_json(200, info)

    def _counts(self) -> tuple[int, int]:
        with self.lock:
            running = sum(1 for q in self.live.values() if q.running)
            return running, len(self.live) - running

    def _loads(self, h: Handler, _body: Any) -> None:
        running, waiting = self._counts()
        used = 100 * running
        h.send_json(
            200,
            {
                "timestamp": time.time(),
                "loads": [
                    {
                        "dp_rank": 0,
                        "num_running_reqs": running,
                        "num_waiting_reqs": waiting,
                        "num_used_tokens": used,
                        "max_total_num_tokens": 100_000,
                        "token_usage": used / 100_000,
                        "gen_throughput": 0.0,
                        "cache_hit_rate": 0.0,
                        "max_running_requests": self.max_running,
                    }
                ],
            },
        )

    def _get_load(self, h: Handler, _body: Any) -> None:
        running, waiting = self._counts()
        h.send_json(200, {"load": 100 * running + 10 * waiting})

    def _tokenize(self, h: Handler, body: Any) -> None:
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            h.send_json(400, {"error": {"message": "Exactly one of 'prompt' or 'messages'"}})
            return
        ids = self.tokenizer.encode(prompt, bool(body.get("add_special_tokens", True)))
        h.send_json(200, {"tokens": ids, "count": len(ids), "max_model_len": 4096})

    # ------------------------------------------------------------------ abort

    def _abort(self, h: Handler, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        self.abort_calls.append(body)
        rid = body.get("rid")
        with self.lock:
            if body.get("abort_all"):
                targets = list(self.live.values())
            elif isinstance(rid, str) and rid in self.live:  # tokenizer: exact live rid only
                targets = [q for r, q in self.live.items() if r.startswith(rid)]  # scheduler
            else:
                targets = []
            for q in targets:
                q.aborted = True
            self.lock.notify_all()
        h.send_raw(200, b"")

    # ------------------------------------------------------------------ score

    def _label_probs(self, context: str, labels: list[int]) -> list[float]:
        probs = dict(next_distribution(context, 0))
        return [probs.get(self.tokenizer.tok(t), 0.0) for t in labels]

    def _score(self, h: Handler, body: Any) -> None:
        if not isinstance(body, dict):
            h.send_json(400, {"error": {"message": "body must be an object"}})
            return
        query = body.get("query") or ""
        items = body.get("items")
        items = [items] if isinstance(items, str) else items
        labels = body.get("label_token_ids")
        if not isinstance(items, list) or not isinstance(labels, list) or not labels:
            h.send_json(400, {"error": {"message": "items and label_token_ids are required"}})
            return
        tag = body.get("score_extraction_token") if self.version == "new" else None
        scores: list[Any] = []
        for item in items:
            text = f"{query}{item}"
            if tag:
                tokens = TOKEN_RE.findall(text)
                rows = []
                for j, tok in enumerate(tokens):
                    if tok == tag:
                        rows.append(
                            self._normalise(
                                self._label_probs("".join(tokens[: j + 1]), labels), body
                            )
                        )
                scores.append(rows)
            else:
                scores.append(self._normalise(self._label_probs(text, labels), body))
        h.send_json(200, {"scores": scores, "model": "fake/prm", "object": "scoring"})

    @staticmethod
    def _normalise(row: list[float], body: dict[str, Any]) -> list[float]:
        if not body.get("apply_softmax"):
            return row
        total = sum(row)
        return [p / total for p in row] if total > 0 else row

    # ------------------------------------------------------------------ generate

    def _generate(self, h: Handler, body: Any) -> None:
        if not isinstance(body, dict):
            h.send_json(400, {"error": {"message": "body must be an object"}})
            return
        self.generate_bodies.append(body)
        if ("text" in body) == ("input_ids" in body):
            h.send_json(400, {"error": {"message": "Either text or input_ids should be provided."}})
            return
        params = body.get("sampling_params") or {}
        allowed = SAMPLING_KEYS | ({"sampling_seed"} if self.version == "new" else set())
        for key in params:
            if key not in allowed:
                msg = (
                    f"unknown field `{key}`"
                    if self.version == "new"
                    else f"__init__() got an unexpected keyword argument '{key}'"
                )
                h.send_json(400, {"error": {"message": msg, "code": 400}})
                return
        if isinstance(body.get("text"), list) or (
            body.get("input_ids") and isinstance(body["input_ids"][0], list)
        ):
            h.send_json(400, {"error": {"message": "the fake server takes single requests"}})
            return
        n = int(params.get("n", 1))
        rid = body.get("rid") or uuid.uuid4().hex
        if self.fault == "abort503" and "/generate" in self.fault_paths:
            abort = {"type": "abort", "message": "The request queue is full.", "status_code": 503}
            h.send_json(200, {"text": "", "meta_info": {"id": rid, "finish_reason": abort}})
            return
        if self.abort_on_priority and not self.priority_scheduling and "priority" in body:
            abort = {
                "type": "abort",
                "message": "Using priority is disabled for this server. "
                "Please send a new request without a priority.",
                "status_code": 503,
            }
            h.send_json(200, {"text": "", "meta_info": {"id": rid, "finish_reason": abort}})
            return
        if self.accept_delay:  # the request reaches the scheduler late: early aborts are lost
            self.closing.wait(self.accept_delay)
        if n > 1:  # children get fresh uuids (io_struct.regenerate_rid): not abortable by rid
            outs = [self._run(h, body, params, uuid.uuid4().hex) for _ in range(n)]
            h.send_json(200, outs)
            return
        h.send_json(200, self._run(h, body, params, rid))

    def _queued_ahead(self, req: _Req) -> bool:
        """Whether a waiting request comes before `req` (higher priority, then earlier)."""
        key = (-req.priority, req.arrival)
        return any(
            not q.running and not q.aborted and (-q.priority, q.arrival) < key
            for q in self.live.values()
        )

    def _seed(self, params: dict[str, Any]) -> int | None:
        if self.version == "new" and self.deterministic:
            return int(params.get("sampling_seed", 42))
        return None

    def _cached(self, ids: list[int]) -> int:
        best = 0
        for prev in self._recent_prompts:
            k = 0
            while k < min(len(prev), len(ids)) - 1 and prev[k] == ids[k]:
                k += 1
            best = max(best, k)
        self._recent_prompts = [*self._recent_prompts[-63:], ids]
        return best

    def _run(self, h: Handler, body: dict[str, Any], params: dict[str, Any], rid: str) -> Any:
        tok = self.tokenizer
        if "text" in body:
            prompt = str(body["text"])
            ids = tok.encode(prompt)
        else:
            ids = [int(i) for i in body["input_ids"]]
            prompt = tok.decode(ids)
        started = time.monotonic()
        with self.lock:
            self._arrivals += 1
            priority = int(body.get("priority") or 0) if self.priority_scheduling else 0
            req = _Req(rid, priority=priority, arrival=self._arrivals)
            self.live[rid] = req
            while (
                (
                    sum(1 for q in self.live.values() if q.running) >= self.max_running
                    or (self.priority_scheduling and self._queued_ahead(req))
                )
                and not req.aborted
                and not self.closing.is_set()
            ):
                self.lock.wait(0.05)
            req.running = not req.aborted
            self.lock.notify_all()
        max_new = int(params.get("max_new_tokens", 128))
        stops = params.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        temperature = float(params.get("temperature", 1.0))
        top_p = float(params.get("top_p", 1.0))
        seed = self._seed(params)
        want_lp = bool(body.get("return_logprob"))
        top_n = int(body.get("top_logprobs_num") or 0)
        ids_lp = body.get("token_ids_logprob") or []
        with_text = bool(body.get("return_text_in_logprobs"))

        tokens: list[str] = []
        out_lp: list[list[Any]] = []
        out_top: list[list[list[Any]]] = []
        out_ids_lp: list[list[list[Any]]] = []
        finish: dict[str, Any] = {"type": "length", "length": max_new}
        abort = {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}
        text: str | None = None
        try:
            for pos in range(max_new):
                if req.aborted and not req.running:  # queued: popped at once
                    finish = abort
                    break
                if self.closing.wait(self.token_delay):
                    break
                s = step(prompt, "".join(tokens), pos, seed, temperature, top_p)
                self._record_lp(s, out_lp, out_top, out_ids_lp, top_n, ids_lp, with_text)
                if s.token == "</s>":
                    tokens.append("")
                    finish = {"type": "stop", "matched": FakeTokenizer.EOS}
                    break
                tokens.append(s.token)
                hit = earliest_stop("".join(tokens), stops)
                if hit is not None:
                    full = "".join(tokens)
                    text = full if params.get("no_stop_trim") else full[: hit[0]]
                    finish = {"type": "stop", "matched": hit[1]}
                    break
                if req.aborted:  # running: finishes after one more step
                    finish = abort
                    break
        finally:
            with self.lock:
                self.live.pop(rid, None)
                if req.aborted:
                    self.aborted.append(rid)
                self.completion_tokens[rid] = len(tokens)
                self.lock.notify_all()
        if text is None:
            text = "".join(tokens)
        meta: dict[str, Any] = {
            "id": rid,
            "finish_reason": finish,
            "prompt_tokens": len(ids),
            "completion_tokens": len(tokens),
            "cached_tokens": self._cached(ids),
            "e2e_latency": time.monotonic() - started,
            "weight_version": "default",
        }
        if want_lp:
            meta["output_token_logprobs"] = out_lp
            if top_n:
                meta["output_top_logprobs"] = out_top
            if ids_lp:
                meta["output_token_ids_logprobs"] = out_ids_lp
            start = int(body.get("logprob_start_len", -1))
            if start >= 0:
                self._input_logprobs(meta, ids, start, ids_lp, top_n, with_text)
        return {"text": text, "output_ids": [tok.id_of(t) for t in tokens], "meta_info": meta}

    def _entry(self, lp: float, token: str, with_text: bool) -> list[Any]:
        return [lp, self.tokenizer.id_of(token), token if with_text else None]

    def _record_lp(
        self,
        s: Any,
        out_lp: list[list[Any]],
        out_top: list[list[list[Any]]],
        out_ids_lp: list[list[list[Any]]],
        top_n: int,
        ids_lp: list[int],
        with_text: bool,
    ) -> None:
        out_lp.append(self._entry(s.logprob, s.token, with_text))
        if top_n:
            out_top.append([self._entry(lp, t, with_text) for t, lp in s.top[:top_n]])
        if ids_lp:
            probs = dict(s.top)
            out_ids_lp.append(
                [[probs.get(self.tokenizer.tok(i), math.log(1e-6)), i, None] for i in ids_lp]
            )

    def _input_logprobs(
        self,
        meta: dict[str, Any],
        ids: list[int],
        start: int,
        ids_lp: list[int],
        top_n: int,
        with_text: bool,
    ) -> None:
        """Input lists cover positions start..len-1; index 0 is None; entry k is
        P(token start+k | <start+k), i.e. the distribution after position start+k-1."""
        tok = self.tokenizer
        token_lp: list[Any] = [[None, ids[start], None]]
        ids_entries: list[Any] = [None]
        top_entries: list[Any] = [None]
        for j in range(start + 1, len(ids)):
            dist = dict(next_distribution(tok.decode(ids[:j]), 0))
            p = dist.get(tok.tok(ids[j]), 1e-6)
            token_lp.append([math.log(p), ids[j], tok.tok(ids[j]) if with_text else None])
            if ids_lp:
                ids_entries.append(
                    [[math.log(dist.get(tok.tok(i), 1e-6)), i, None] for i in ids_lp]
                )
            if top_n:
                ranked = sorted(dist.items(), key=lambda x: -x[1])[:top_n]
                top_entries.append([[math.log(q), tok.id_of(t), None] for t, q in ranked])
        meta["input_token_logprobs"] = token_lp
        if ids_lp:
            meta["input_token_ids_logprobs"] = ids_entries
        if top_n:
            meta["input_top_logprobs"] = top_entries
