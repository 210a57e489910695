"""`EmbeddedBackend`: the Backend protocol on a managed llama-server subprocess.

Each request of n seeds is split into runs of consecutive seeds (s, s+1, ...);
one run is one ``/completion`` call with ``n_cmpl`` = its length, for which
llama-server evaluates the prompt once and copies its KV cells to the sibling
slots (``seq_cp``), so siblings never re-read the shared prefix. Seeds that
are not consecutive go out as separate calls; they still share the prefix
through the slot prompt cache and the host-RAM prompt cache when it was
evaluated before. Every call is decoded together with all other calls in
flight (continuous batching over ``parallel`` slots). Cancelling closes the
HTTP connection, which makes llama-server release the slots at once.

Every streamed event carries ``tokens_predicted`` (tokens decoded so far), so a
request whose results are dropped (cancelled, or a sibling call failed) still
says what it cost: `aborted_tokens()` sums the last count each stream sent. A
token or two decoded after that event, before llama-server notices the closed
connection, is not seen: the count is a lower bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.embedded.build import ensure_llama_server
from spex_graph.backends.embedded.models import DEFAULT_MODEL, ensure_model, get_spec
from spex_graph.backends.embedded.server import LlamaServer, ServerConfig
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    RequestCancelledError,
    TransientBackendError,
)

_U32 = 1 << 32
_DEFAULT_SEED = _U32 - 1  # llama.cpp's "random seed" value, never sent
_FIELDS = [
    "index",
    "content",
    "tokens_predicted",
    "tokens_evaluated",
    "stop_type",
    "stopping_word",
    "stop",
    "timings",
    "completion_probabilities",
]


def _batch_cost(model: str) -> float:
    """This machine's measured batch cost for `model` (`spex bench-engine` records it),
    else the assumed one; either way far from free on a CPU."""
    from spex_graph.backends.embedded.bench import ASSUMED_BATCH_COST, measured_batch_cost

    measured = measured_batch_cost(model)
    return ASSUMED_BATCH_COST if measured is None else measured


def engine_seed(seed: int) -> int:
    """Map any Python int to the engine's uint32 seed space (never the 'random' value)."""
    value = seed % _U32
    return 0 if value == _DEFAULT_SEED else value


def seed_runs(seeds: tuple[int, ...], max_run: int) -> list[tuple[int, int]]:
    """Split seeds into (start index, length) runs of consecutive engine seeds, each <= max_run."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(seeds) + 1):
        breaks = (
            i == len(seeds)
            or i - start >= max_run
            or engine_seed(seeds[i]) != engine_seed(seeds[start]) + (i - start)
        )
        if breaks:
            runs.append((start, i - start))
            start = i
    return runs


@dataclass
class _Flight:
    task: asyncio.Task[list[Completion]]
    cancelled: bool = False


class EmbeddedBackend:
    """Run searches on a local CPU model through a managed llama-server (continuous batching).

    Nothing heavy happens at construction: the first `generate` or `health`
    assembles the model file, builds llama-server if needed (~10 min, once)
    and starts it.

    Args:
        model: registry name ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b") or "1.5b"/"0.5b".
        parallel: slots decoded together; also the largest group of siblings sharing one prompt.
        ctx_per_slot: context tokens per slot.
        threads: CPU threads (default: all cores).
        top_k, min_p: llama.cpp sampler truncation applied before temperature/top_p.
        request_timeout: seconds one HTTP call may wait for its answer (queueing included).
        cache_dir: override ``$SPEX_CACHE_DIR``.
        server_args: extra llama-server arguments.
    """

    name = "embedded"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        parallel: int = 8,
        *,
        ctx_per_slot: int = 4096,
        threads: int | None = None,
        top_k: int = 40,
        min_p: float = 0.05,
        request_timeout: float = 900.0,
        cache_dir: Path | None = None,
        server_args: tuple[str, ...] = (),
    ) -> None:
        """Record the settings; see the class docstring."""
        self.model = get_spec(model).name
        self.parallel = max(1, parallel)
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads
        self.top_k = top_k
        self.min_p = min_p
        self.request_timeout = request_timeout
        self.cache_dir = cache_dir
        self.server_args = server_args
        self.capabilities = BackendCapabilities(
            can_abort=True,
            seeded=True,
            logprobs=True,
            shares_prefix_cache=True,
            max_concurrency=self.parallel,
            batch_cost=_batch_cost(self.model),
            counts_aborted_tokens=True,
        )
        self._server: LlamaServer | None = None
        self._setup_lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._flights: dict[str, _Flight] = {}
        self._aborted_tokens = 0

    @property
    def server(self) -> LlamaServer | None:
        """The managed llama-server, once started (None before the first request)."""
        return self._server

    async def base_url(self) -> str:
        """Start the engine if needed and return its root URL (``http://127.0.0.1:PORT``).

        llama-server also answers OpenAI's API under ``/v1`` (chat completions; tool calls
        need ``server_args=("--jinja",)``), so one engine can serve a chat model too.
        """
        return await self._ensure_server()

    async def _ensure_server(self) -> str:
        if self._server is None:
            if self._setup_lock is None:
                self._setup_lock = asyncio.Lock()
            async with self._setup_lock:
                if self._server is None:
                    self._server = await asyncio.to_thread(self._make_server)
        return await self._server.ensure_running()

    def _make_server(self) -> LlamaServer:
        def progress(msg: str) -> None:
            print(f"[spex embedded] {msg}", file=sys.stderr, flush=True)

        model_path = ensure_model(self.model, self.cache_dir, progress=progress)
        binary = ensure_llama_server(self.cache_dir, progress=progress)
        config = ServerConfig(
            binary=binary,
            model=model_path,
            parallel=self.parallel,
            ctx_per_slot=self.ctx_per_slot,
            threads=self.threads,
            extra_args=self.server_args,
        )
        return LlamaServer(config)

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # no keep-alive: llama-server closes streamed connections, and a stale pooled
            # one would fail the next request; a loopback connect costs ~0.1 ms
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.request_timeout, connect=10.0, pool=None),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            )
            self._client_loop = loop
        return self._client

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Return one completion per seed, in seed order (see the module docstring)."""
        if not request.seeds:
            return []
        task = asyncio.ensure_future(self._generate(request))
        flight = _Flight(task)
        self._flights[request.request_id] = flight
        try:
            return await task
        except asyncio.CancelledError:
            if flight.cancelled:
                raise RequestCancelledError(f"request {request.request_id} was cancelled") from None
            raise
        finally:
            if self._flights.get(request.request_id) is flight:
                del self._flights[request.request_id]

    async def _generate(self, request: GenerationRequest) -> list[Completion]:
        runs = seed_runs(request.seeds, self.parallel)
        decoded: dict[int, int] = {}  # seed index -> tokens decoded so far (streamed)
        calls = [self._run_call(request, start, length, decoded) for start, length in runs]
        try:
            results = await _all_or_nothing(calls)
        except BaseException:  # cancelled or failed: what was decoded is dropped
            self._aborted_tokens += sum(decoded.values())
            raise
        return [completion for group in results for completion in group]

    async def aborted_tokens(self) -> int:
        """Tokens llama-server decoded for requests whose results were dropped, from the
        streamed ``tokens_predicted`` (a lower bound; see the module docstring)."""
        return self._aborted_tokens

    async def _run_call(
        self, request: GenerationRequest, start: int, n: int, decoded: dict[int, int]
    ) -> list[Completion]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "n_predict": request.max_tokens,
            "seed": engine_seed(request.seeds[start]),
            "n_cmpl": n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "stop": list(request.stop),
            "cache_prompt": True,
            "stream": True,
            "response_fields": _FIELDS,
        }
        if request.logprobs:
            body["n_probs"] = 1
        items = await self._post_stream(body, n, decoded, start)
        return [_completion(item, request.logprobs) for item in items]

    async def _post_stream(
        self, body: dict[str, Any], n: int, decoded: dict[int, int], offset: int
    ) -> list[dict[str, Any]]:
        """POST a streamed /completion; merge the events per index into final items.

        Streaming is what makes cancellation reach the engine: llama-server notices
        the closed connection on its next write and releases the slots. Each event's
        ``tokens_predicted`` goes to ``decoded[offset + index]`` as it arrives.
        """
        for attempt in range(2):
            url = await self._ensure_server()
            items: list[dict[str, Any]] = [
                {"content": "", "completion_probabilities": []} for _ in range(n)
            ]
            try:
                async with self._http().stream("POST", f"{url}/completion", json=body) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        raise BackendRequestError(
                            f"llama-server answered {resp.status_code}: {_error_text(resp)}"
                        )
                    async for line in resp.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        event = json.loads(line[6:])
                        if "error" in event:
                            raise BackendRequestError(f"llama-server error: {event['error']}")
                        index = int(event.get("index", 0))
                        item = items[index]
                        predicted = event.get("tokens_predicted")
                        if isinstance(predicted, int) and predicted > 0:
                            key = offset + index
                            decoded[key] = max(decoded.get(key, 0), predicted)
                        item["content"] += event.get("content", "")
                        item["completion_probabilities"] += (
                            event.get("completion_probabilities") or []
                        )
                        if event.get("stop"):
                            for key, value in event.items():
                                if key not in ("content", "completion_probabilities"):
                                    item[key] = value
            except httpx.ConnectError as exc:
                if attempt == 0 and self._server is not None and not self._server.is_alive():
                    continue  # died while idle: the retry restarts it
                raise self._unavailable(exc) from exc
            except httpx.TimeoutException as exc:
                raise BackendUnavailableError(
                    f"llama-server did not answer within {self.request_timeout:.0f}s; "
                    f"raise request_timeout or lower parallel"
                ) from exc
            except httpx.HTTPError as exc:
                raise self._unavailable(exc) from exc
            except ValueError as exc:
                raise BackendRequestError("llama-server sent malformed JSON") from exc
            if any("stop_type" not in item for item in items):
                raise self._unavailable(RuntimeError("stream ended before every result"))
            return items
        raise AssertionError("unreachable")

    def _unavailable(self, exc: Exception) -> BackendUnavailableError:
        # transient: the dispatcher retries, and the retry restarts a dead server
        server = self._server
        if server is not None and not server.is_alive():
            return TransientBackendError(
                f"llama-server died (exit code {server.exit_code()}) during the request; "
                f"the next request restarts it (log: {server.log_path})"
            )
        return TransientBackendError(
            f"llama-server connection failed ({type(exc).__name__}: {exc}); "
            f"log: {server.log_path if server else '-'}"
        )

    async def cancel(self, request_id: str) -> None:
        """Abort the request: its HTTP calls are closed and llama-server frees the slots."""
        flight = self._flights.get(request_id)
        if flight is None or flight.task.done():
            return
        flight.cancelled = True
        flight.task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(flight.task), timeout=2.0)

    async def health(self) -> None:
        """Start the engine if needed and check that it answers ``/health``."""
        url = await self._ensure_server()
        try:
            response = await self._http().get(f"{url}/health", timeout=5.0)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        if response.status_code != 200:
            raise BackendUnavailableError(
                f"llama-server /health answered {response.status_code}: {_error_text(response)}"
            )

    async def aclose(self) -> None:
        """Abort requests in flight, close HTTP connections and stop llama-server."""
        for request_id in list(self._flights):
            await self.cancel(request_id)
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._server is not None:
            await self._server.stop()


async def _all_or_nothing(calls: Sequence[Awaitable[list[Completion]]]) -> list[list[Completion]]:
    """Await all calls concurrently; on the first failure cancel the rest and re-raise."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _completion(item: dict[str, Any], logprobs: bool) -> Completion:
    stop_type = item.get("stop_type", "none")
    word = item.get("stopping_word") or None
    timings = item.get("timings") or {}
    token_logprobs: tuple[float, ...] = ()
    if logprobs:
        token_logprobs = tuple(
            float(p.get("logprob", 0.0)) for p in item.get("completion_probabilities") or ()
        )
    return Completion(
        text=item.get("content", ""),
        finish_reason="length" if stop_type == "limit" else "stop",
        prompt_tokens=int(item.get("tokens_evaluated", timings.get("prompt_n", 0)) or 0),
        completion_tokens=int(item.get("tokens_predicted", 0) or 0),
        cached_tokens=int(timings.get("cache_n", 0) or 0),
        stop_matched=word if stop_type == "word" else None,
        token_logprobs=token_logprobs,
    )


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
    except ValueError:
        message = None
    return (message or response.text or "").replace("\n", " ")[:300]
