"""SGLang backend on the native HTTP API (`POST /generate`, `POST /abort_request`).

Each continuation runs as its own request with its own rid
(`f"{request_id}-{i:04d}"`) and its own `sampling_seed`: SGLang's `n>1` gives
the children fresh uuid rids that cannot be aborted, and one seed per sample
is what makes a speculative expansion reproduce the primary one exactly.

Facts this client relies on (SGLang 0.5.2 "old" and 0.5.23 "new"):

- `sampling_seed` exists only in new versions, where an unknown key inside
  `sampling_params` is an HTTP 400; it is honoured only when the server runs
  with `--enable-deterministic-inference`. The backend reads `/server_info`
  (old: `/get_server_info`) once and sets `capabilities.seeded` accordingly.
- `/abort_request {"rid"}` only works for a rid the server holds right now and
  then kills every rid that starts with it; the waiting client gets a normal
  200 answer whose `finish_reason.type` is `"abort"`. An abort that arrives
  before its request is dropped, so `cancel` re-sends it after `abort_grace`
  seconds and then also drops the local connection.
- The abort answer's `meta_info.completion_tokens` is what the engine generated
  before it stopped: each `/generate` exchange outlives a cancelled caller (up to
  `abort_grace`) to read it, and `aborted_tokens()` sums it over every request
  whose results were dropped (cancelled, aborted, or a sibling failed).
- Load comes from `/v1/loads` (new) or `/get_load` (old).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Coroutine
from typing import Any, Literal

from spex_graph.backends._common import (
    HttpService,
    Inflight,
    begin_request,
    cut_at_stop,
    make_completion,
    mark_retrieved,
    one_line,
    requested_top_logprobs,
    run_children,
    server_message,
)
from spex_graph.backends.base import (
    GPU_BATCH_COST,
    BackendCapabilities,
    Completion,
    GenerationRequest,
)
from spex_graph.backends.gate import PriorityGate
from spex_graph.backends.load import EngineLoad, SGLangLoadReader
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
    SpexError,
)

log = logging.getLogger(__name__)

SGLANG_START_HINT = (
    "start it with `python -m sglang.launch_server --model-path MODEL --port 30000` "
    "or pass --backend-url"
)

ApiVersion = Literal["auto", "new", "old"]


def parse_sglang_finish(finish: Any) -> tuple[str, Any, dict[str, Any]]:
    """(kind, matched, raw dict) from SGLang's `meta_info.finish_reason`.

    kind is "stop", "length" or "abort"; matched is the stop string or token id.
    """
    if isinstance(finish, dict):
        kind = str(finish.get("type") or "stop")
        raw = finish
    elif isinstance(finish, str):
        kind, raw = finish, {"type": finish}
    else:
        kind, raw = "stop", {}
    if kind not in ("stop", "length", "abort"):
        kind = "length" if "length" in kind else "stop"
    return kind, raw.get("matched"), raw


def parse_logprob_entries(entries: Any) -> tuple[float, ...]:
    """Logprobs from SGLang entries `[logprob, token_id, text|null]` (None entries skipped)."""
    out: list[float] = []
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, list | tuple) and entry and isinstance(entry[0], int | float):
                out.append(float(entry[0]))
    return tuple(out)


def parse_top_entries(positions: Any) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Top logprobs per position from SGLang's `output_top_logprobs`."""
    out: list[tuple[tuple[str, float], ...]] = []
    if isinstance(positions, list):
        for pos in positions:
            pairs: list[tuple[str, float]] = []
            if isinstance(pos, list):
                for entry in pos:
                    if (
                        isinstance(entry, list | tuple)
                        and len(entry) >= 2
                        and isinstance(entry[0], int | float)
                    ):
                        text = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else ""
                        pairs.append((text, float(entry[0])))
            pairs.sort(key=lambda p: -p[1])
            out.append(tuple(pairs))
    return tuple(out)


def sglang_generate_options(request: GenerationRequest, i: int, *, seed: bool) -> dict[str, Any]:
    """SGLang's generate options for sample `i` of `request` (sampling params, logprobs),
    shared by the HTTP `/generate` body and the in-process `Engine.async_generate` call."""
    params: dict[str, Any] = {
        "max_new_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if request.stop:
        params["stop"] = list(request.stop)
    if seed:
        params["sampling_seed"] = int(request.seeds[i])
    options: dict[str, Any] = {"sampling_params": params}
    top = requested_top_logprobs(request)
    if request.logprobs or top:
        options.update(return_logprob=True, logprob_start_len=-1)
    if top:
        options["top_logprobs_num"] = top
    return options


def sglang_output_completion(
    data: dict[str, Any], request: GenerationRequest
) -> tuple[Completion | None, dict[str, Any]]:
    """A Completion from one SGLang output (``/generate`` JSON or ``Engine.async_generate``),
    or None and the raw finish reason when SGLang aborted the request."""
    raw_meta = data.get("meta_info")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    kind, matched, raw = parse_sglang_finish(meta.get("finish_reason"))
    if kind == "abort":
        return None, raw
    text, cut = cut_at_stop(str(data["text"]), request.stop)
    stop_matched = cut or (matched if isinstance(matched, str) and matched else None)
    if cut is not None:
        kind = "stop"
    completion = make_completion(
        text=text,
        finish_reason=kind,
        prompt_tokens=int(meta.get("prompt_tokens") or 0),
        completion_tokens=int(meta.get("completion_tokens") or 0),
        cached_tokens=int(meta.get("cached_tokens") or 0),
        stop_matched=stop_matched,
        token_logprobs=parse_logprob_entries(meta.get("output_token_logprobs")),
        top_logprobs=parse_top_entries(meta.get("output_top_logprobs")),
    )
    return completion, raw


SD_VERIFY_KNEE_TOKENS = 200
"""Tokens per step from which a decode step of a dense model is compute-bound: the
GPU's roofline ridge, 2 FLOPs per weight per token against 2 bytes per weight read
(BF16), so FLOP/s over bytes/s: H100 SXM 989.5 TFLOP/s / 3.35 TB/s = 295, H200
989.5 / 4.8 = 206 (shared/SGLANG.md section 9, from datacrunch.io's H200 benchmark
post), rounded down to the smaller. With speculative decoding every sequence verifies
its draft tokens each step, so the knee in sequences is this over
`--speculative-num-draft-tokens` (the simulator's modern 8B preset: 26 on an H100, 18
on an H200, KV reads included)."""


class SGLangBackend:
    """Backend for an SGLang server (`python -m sglang.launch_server`), native API.

    Args:
        base_url: server URL, e.g. "http://127.0.0.1:30000".
        timeout: seconds one request may take (a whole generation).
        connect_timeout: seconds to open a connection.
        max_concurrency: requests in flight at once from this client.
        send_seed: send one `sampling_seed` per continuation.
        api_version: "new" (>= 0.5.3: `sampling_seed`, `/v1/loads`), "old"
            (0.5.2: no seeds, `/get_load`) or "auto" (probe `/server_info`, and
            retry without the seed on a 400 naming it).
        send_priority: send `GenerationRequest.priority` (servers launched with
            `--abort-on-priority-when-disabled` reject it without
            `--enable-priority-scheduling`).
        abort_grace: seconds after `cancel` before the abort is re-sent and the
            local connection dropped (an abort that overtakes its request is lost).
        api_key: the server's `--api-key`, if any.
        free_batch: the decode batch from which the server's steps are compute-bound
            (`BackendCapabilities.free_batch`); None = from `/server_info`: a server
            with speculative decoding on gets `SD_VERIFY_KNEE_TOKENS` divided by its
            `--speculative-num-draft-tokens`, a plain one is left unknown.
        name: backend name in traces.
    """

    name: str
    capabilities: BackendCapabilities

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_concurrency: int = 64,
        send_seed: bool = True,
        api_version: ApiVersion = "auto",
        send_priority: bool = True,
        abort_grace: float = 1.0,
        api_key: str | None = None,
        free_batch: int | None = None,
        name: str = "sglang",
    ) -> None:
        if api_version not in ("auto", "new", "old"):
            raise ConfigError(f"api_version must be 'auto', 'new' or 'old', not {api_version!r}")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, not {max_concurrency}")
        self.name = name
        self.api_version: ApiVersion = api_version
        self.send_priority = send_priority
        self.abort_grace = abort_grace
        self.server_version: str | None = None
        self._send_seed = send_seed and api_version != "old"
        self._http = HttpService(
            "SGLang",
            base_url,
            start_hint=SGLANG_START_HINT,
            timeout=timeout,
            connect_timeout=connect_timeout,
            # a cancelled request keeps its connection until the engine's abort answer
            max_connections=2 * max_concurrency + 8,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        )
        self.capabilities = BackendCapabilities(
            can_abort=True,
            seeded=self._send_seed,
            logprobs=True,
            shares_prefix_cache=True,
            max_concurrency=max_concurrency,
            batch_cost=GPU_BATCH_COST,
            free_batch=free_batch,
            can_promote=True,
            reports_load=True,
            counts_aborted_tokens=True,
        )
        self._free_batch_given = free_batch is not None
        self._max_concurrency = max_concurrency
        self._slots: PriorityGate | None = None
        self._probe_lock: asyncio.Lock | None = None
        self._probed = False
        self._load = SGLangLoadReader(self._http, api_version)
        self._inflight: dict[str, Inflight] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # finished calls whose children may still run on the engine (abort on close)
        self._recent: collections.deque[Inflight] = collections.deque(maxlen=256)
        # `/generate` exchanges by engine rid; each outlives a cancelled caller until
        # the engine answers (normally with its abort), so its tokens can be counted
        self._exchanges: dict[str, tuple[asyncio.Task[dict[str, Any]], DroppedTokens]] = {}
        self._aborted_tokens = 0

    @property
    def base_url(self) -> str:
        """The server URL."""
        return self._http.base_url

    # ------------------------------------------------------------------ generate

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """One completion per seed, in seed order (one `/generate` request each)."""
        self._http.client()  # raises once closed
        if request.n == 0:
            return []
        state = begin_request(self._inflight, request, f"SGLang at {self.base_url}")
        tally = DroppedTokens()
        delivered = False
        try:
            await self._ensure_probed()
            if state.cancelled:
                raise self._cancelled(request.request_id)
            coros: list[Coroutine[Any, Any, Completion]] = [
                self._one(request, i, state, tally) for i in range(request.n)
            ]
            completions = await run_children(
                state,
                coros,
                on_abandon=self._abandon,
                cancelled_error=lambda: self._cancelled(request.request_id),
            )
            delivered = True
            return completions
        finally:
            self._inflight.pop(request.request_id, None)
            if not delivered:
                tally.dropped = True
                self._aborted_tokens += tally.total()
            if state.unanswered():
                self._recent.append(state)

    def _cancelled(self, request_id: str) -> RequestCancelledError:
        return RequestCancelledError(
            f"request {request_id} was cancelled (aborted on SGLang at {self.base_url})"
        )

    async def _one(
        self, request: GenerationRequest, i: int, state: Inflight, tally: DroppedTokens
    ) -> Completion:
        rid = state.rids[i]
        async with self._slots_sem().slot(request.priority, request.request_id):
            if state.cancelled:
                raise self._cancelled(request.request_id)
            state.sent.add(rid)
            body = self._body(request, i, rid)
            exchange = asyncio.create_task(self._exchange(body, rid, state, tally))
            exchange.add_done_callback(mark_retrieved)
            self._exchanges[rid] = (exchange, tally)
            exchange.add_done_callback(functools.partial(self._forget_exchange, rid))
            try:
                # shielded: a cancelled caller leaves the exchange to collect the abort answer
                data = await asyncio.shield(exchange)
            except SpexError as exc:
                if state.cancelled:
                    raise self._cancelled(request.request_id) from exc
                raise
        return self._completion(data, request, rid, state)

    def _forget_exchange(self, rid: str, task: asyncio.Task[dict[str, Any]]) -> None:
        entry = self._exchanges.get(rid)
        if entry is not None and entry[0] is task:
            del self._exchanges[rid]

    async def _exchange(
        self, body: dict[str, Any], rid: str, state: Inflight, tally: DroppedTokens
    ) -> dict[str, Any]:
        """One `/generate` call; counts its tokens toward the request's tally."""
        try:
            data = await self._post_generate(body)
        finally:
            state.answered.add(rid)
        raw_meta = data.get("meta_info")
        tokens = raw_meta.get("completion_tokens") if isinstance(raw_meta, dict) else None
        count = int(tokens) if isinstance(tokens, int | float) and tokens > 0 else 0
        if tally.dropped:  # the caller has gone: these tokens were generated for nothing
            self._aborted_tokens += count
        else:
            tally.tokens[rid] = count
        return data

    def _slots_sem(self) -> PriorityGate:
        if self._slots is None:
            self._slots = PriorityGate(self._max_concurrency)
        return self._slots

    async def promote(self, request_id: str, priority: int) -> None:
        """Raise a request still waiting for a client slot to `priority`."""
        self._slots_sem().promote(request_id, priority)

    def _body(self, request: GenerationRequest, i: int, rid: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "text": request.prompt,
            **sglang_generate_options(request, i, seed=self._send_seed),
            "rid": rid,
        }
        if self.send_priority:
            body["priority"] = request.priority
        if "top_logprobs_num" in body:
            body["return_text_in_logprobs"] = True
        return body

    async def _post_generate(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.send("POST", "/generate", json_body=body)
        params = body["sampling_params"]
        if (
            response.status_code == 400
            and "sampling_seed" in params
            and self.api_version == "auto"
            and "sampling_seed" in server_message(response)
        ):
            self._disable_seed(f"it rejected sampling_seed ({server_message(response)})")
            params = {k: v for k, v in params.items() if k != "sampling_seed"}
            body = {**body, "sampling_params": params}
            response = await self._http.send("POST", "/generate", json_body=body)
        data = self._http.parse_json(response, "/generate")
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise self._http.malformed("/generate", "a 'text' field")
        return data

    def _completion(
        self, data: dict[str, Any], request: GenerationRequest, rid: str, state: Inflight
    ) -> Completion:
        completion, raw = sglang_output_completion(data, request)
        if completion is None:
            status = raw.get("status_code")
            message = one_line(raw.get("message") or "Aborted", 120)
            if state.cancelled or status is None:
                raise self._cancelled(request.request_id)
            hint = (
                "send fewer requests at once, or raise --max-queued-requests"
                if status == 503
                else "check the prompt length and the server log"
            )
            raise BackendRequestError(
                f"SGLang at {self.base_url} aborted {rid} ({message}, status {status}); {hint}"
            )
        return completion

    # ------------------------------------------------------------------ probing

    def _disable_seed(self, why: str) -> None:
        if self._send_seed:
            log.warning(
                "SGLang at %s: %s; sending no seeds, so samples are not reproducible "
                "(use SGLang >= 0.5.3 with --enable-deterministic-inference)",
                self.base_url,
                why,
            )
        self._send_seed = False
        self.capabilities = dataclasses.replace(self.capabilities, seeded=False)

    async def _ensure_probed(self) -> None:
        if self._probed:
            return
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            if self._probed:
                return
            info: Any = None
            for path in ("/server_info", "/get_server_info"):
                response = await self._http.send("GET", path, timeout=min(self._http.timeout, 30))
                if response.status_code == 200:
                    with contextlib.suppress(ValueError):
                        info = response.json()
                    break
            self._apply_server_info(info)
            self._probed = True

    def _apply_server_info(self, info: Any) -> None:
        if not isinstance(info, dict):
            return  # e.g. behind a router: keep the configured defaults
        version = info.get("version")
        self.server_version = str(version) if version is not None else None
        if info.get("speculative_algorithm"):
            drafts = info.get("speculative_num_draft_tokens")
            per_sequence = drafts if isinstance(drafts, int) and drafts > 0 else 8
            self.capabilities = dataclasses.replace(
                self.capabilities,
                speculative_decoding=True,
                free_batch=self.capabilities.free_batch
                if self._free_batch_given
                else max(1, SD_VERIFY_KNEE_TOKENS // per_sequence),
            )
        deterministic = info.get("enable_deterministic_inference")
        if deterministic is None:
            if self.api_version == "auto":
                self._disable_seed(
                    f"version {self.server_version or '?'} has no "
                    "--enable-deterministic-inference, so it ignores sampling_seed"
                )
        elif not deterministic:
            if self.capabilities.seeded:
                log.warning(
                    "SGLang at %s runs without --enable-deterministic-inference: it ignores "
                    "sampling_seed and samples are not reproducible; restart it with that flag",
                    self.base_url,
                )
            self.capabilities = dataclasses.replace(self.capabilities, seeded=False)

    # ------------------------------------------------------------------ cancel

    async def cancel(self, request_id: str) -> None:
        """Abort every continuation of `request_id` on the engine; unknown ids are ignored.

        The waiting `generate` raises RequestCancelledError once the engine answers
        with an abort. An abort that overtook its request is lost on SGLang, so the
        aborts are re-sent (backing off) for `abort_grace` seconds, after which the
        local connections are dropped.
        """
        state = self._inflight.get(request_id)
        if state is None or state.cancelled or self._http.closed:
            return
        state.cancelled = True
        for rid, task in zip(state.rids, state.tasks, strict=False):
            if rid not in state.sent and not task.done():
                task.cancel()  # still waiting for a slot: nothing on the engine yet
        self._ensure_watchdog(state)
        await self._abort(state.unanswered())

    def _ensure_watchdog(self, state: Inflight) -> None:
        if self._http.closed or (state.watchdog is not None and not state.watchdog.done()):
            return
        state.watchdog = self._spawn(self._watchdog(state))

    async def _watchdog(self, state: Inflight) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, self.abort_grace)
        delay = 0.05
        while (remaining := end - loop.time()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(2 * delay, 0.5)
            rids = state.unanswered()
            if not rids:
                return
            await self._abort(rids)
        for task in state.tasks:
            if not task.done():
                task.cancel()
        for rid in state.rids:  # the engine never answered: its tokens stay uncounted
            entry = self._exchanges.get(rid)
            if entry is not None:
                entry[0].cancel()

    def _abandon(self, state: Inflight) -> None:
        for task in state.tasks:
            task.cancel()
        rids = state.unanswered()
        if rids and not self._http.closed:
            self._spawn(self._abort(rids))
            self._ensure_watchdog(state)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _abort(self, rids: list[str]) -> None:
        if not rids or self._http.closed:
            return

        async def one(rid: str) -> None:
            try:
                response = await self._http.send(
                    "POST",
                    "/abort_request",
                    json_body={"rid": rid, "abort_all": False},
                    timeout=min(self._http.timeout, 10.0),
                )
                if response.status_code >= 400:  # normally 200 with an empty body
                    raise self._http.status_error(response, "/abort_request")
            except SpexError as exc:
                log.warning("could not abort %s on SGLang at %s: %s", rid, self.base_url, exc)

        await asyncio.gather(*(one(r) for r in rids))

    # ------------------------------------------------------------------ health, load, close

    async def health(self) -> None:
        """Raise BackendUnavailableError (one line, naming the fix) unless `/health` is 200."""
        response = await self._http.send("GET", "/health", timeout=min(self._http.timeout, 30))
        if response.status_code != 200:
            detail = server_message(response)
            if response.status_code == 503:
                raise BackendUnavailableError(
                    f"SGLang at {self.base_url} is not healthy (HTTP 503 on /health: {detail}); "
                    "wait until it has loaded the model, or check its log"
                )
            raise BackendUnavailableError(
                f"SGLang at {self.base_url} answered /health with HTTP {response.status_code} "
                f"({detail}); check that --backend-url points at an SGLang server"
            )
        await self._ensure_probed()

    async def load(self) -> EngineLoad | None:
        """Current load from `/v1/loads` (new) or `/get_load` (old); None if neither exists."""
        return await self._load.read()

    async def aborted_tokens(self) -> int:
        """Tokens SGLang generated for requests whose results were dropped (cancelled,
        aborted, or a sibling failed), from each answer's `meta_info.completion_tokens`;
        waits up to `abort_grace` (+1 s) for abort answers still on their way."""
        pending = [task for task, tally in self._exchanges.values() if tally.dropped]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, self.abort_grace) + 1.0)
        return self._aborted_tokens

    async def aclose(self) -> None:
        """Abort what the engine still runs for this client, then close; idempotent."""
        if self._http.closed:
            return
        states = [*self._inflight.values(), *self._recent]
        for state in states:
            state.cancelled = True
        rids = sorted({rid for state in states for rid in state.unanswered()})
        with contextlib.suppress(SpexError):
            await self._abort(rids)
        for state in states:
            for task in state.tasks:
                task.cancel()
        for exchange, _ in list(self._exchanges.values()):
            exchange.cancel()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=1.0)
        await self._http.aclose()


@dataclasses.dataclass
class DroppedTokens:
    """Completion tokens of one `generate` call's answered exchanges, by engine rid.

    Attributes:
        tokens: each answered child's `completion_tokens`.
        dropped: `generate` ended without returning them; answers arriving later
            count straight into the backend's aborted tokens.
    """

    tokens: dict[str, int] = dataclasses.field(default_factory=dict)
    dropped: bool = False

    def total(self) -> int:
        """Tokens of the children answered so far."""
        return sum(self.tokens.values())
