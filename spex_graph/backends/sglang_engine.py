"""SGLang in this process: `sglang.Engine`, behind the ``spex-graph[sglang]`` extra.

``sglang`` (and the CUDA build of torch it pins) is imported only when the engine is
first needed, so the default install never pulls them. Outputs have the same shape as the
HTTP ``/generate`` JSON, so the two backends share their parsing. Facts relied on (SGLang
0.5.23, W23 ``srt/entrypoints/engine.py``): ``Engine(**ServerArgs)`` loads the model;
``async_generate(prompt=, sampling_params=, return_logprob=, logprob_start_len=,
top_logprobs_num=, rid=, priority=)`` returns the output dict; cancelling its task aborts
the request on the engine; ``shutdown()`` stops it. ``sampling_seed`` is honoured only with
``enable_deterministic_inference=True``, which this backend turns on when it sends seeds.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from spex_graph.backends.base import BackendCapabilities, Completion, GenerationRequest
from spex_graph.backends.sglang import sglang_generate_options, sglang_output_completion
from spex_graph.errors import BackendRequestError, ConfigError, RequestCancelledError

__all__ = ["INSTALL_HINT", "SGLangEngineBackend"]

#: What to do when ``import sglang`` fails.
INSTALL_HINT = (
    "the in-process SGLang engine needs the sglang extra: pip install 'spex-graph[sglang]' "
    "(a CUDA machine), or run an SGLang server and use SGLangBackend(url)"
)


class SGLangEngineBackend:
    """An `sglang.Engine` in this process, started on first use.

    Args:
        model_path: the model to load (a Hugging Face id or a local folder).
        max_concurrency: continuations in flight at once.
        send_seed: give every continuation its own ``sampling_seed`` (turns on
            ``enable_deterministic_inference``).
        name: backend name in traces.
        **server_args: more ``sglang.ServerArgs`` fields (``mem_fraction_static``, ``tp_size``,
            ``enable_priority_scheduling``, ...).
    """

    name: str
    capabilities: BackendCapabilities

    def __init__(
        self,
        model_path: str,
        *,
        max_concurrency: int = 64,
        send_seed: bool = True,
        name: str = "sglang-engine",
        **server_args: Any,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, not {max_concurrency}")
        self.model_path = model_path
        self.name = name
        self.server_args = dict(server_args)
        if send_seed:
            self.server_args.setdefault("enable_deterministic_inference", True)
        self.send_priority = bool(self.server_args.get("enable_priority_scheduling"))
        self._send_seed = send_seed
        self.capabilities = BackendCapabilities(
            can_abort=True,
            seeded=send_seed,
            logprobs=True,
            shares_prefix_cache=True,
            max_concurrency=max_concurrency,
        )
        self._engine: Any = None
        self._starting: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._max_concurrency = max_concurrency
        self._tasks: dict[str, list[asyncio.Task[Completion]]] = {}
        self._cancelled: set[str] = set()

    async def engine(self) -> Any:
        """The engine, started (off the event loop: it loads weights) on first call.

        Raises:
            ConfigError: sglang is not installed.
        """
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._engine is None:
                try:
                    sglang = importlib.import_module("sglang")
                except ImportError:
                    raise ConfigError(INSTALL_HINT) from None
                self._engine = await asyncio.to_thread(
                    sglang.Engine, model_path=self.model_path, **self.server_args
                )
        return self._engine

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """One completion per seed, in seed order (one engine request each)."""
        if request.n == 0:
            return []
        engine = await self.engine()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_concurrency)
        tasks = [asyncio.ensure_future(self._one(engine, request, i)) for i in range(request.n)]
        self._tasks[request.request_id] = tasks
        try:
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            if request.request_id in self._cancelled:
                raise self._cancelled_error(request.request_id) from None
            raise
        finally:
            for task in tasks:
                task.cancel()
            self._tasks.pop(request.request_id, None)
            self._cancelled.discard(request.request_id)

    async def _one(self, engine: Any, request: GenerationRequest, i: int) -> Completion:
        rid = f"{request.request_id}-{i:04d}"
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            **sglang_generate_options(request, i, seed=self._send_seed),
            "rid": rid,
        }
        if self.send_priority:
            kwargs["priority"] = request.priority
        assert self._slots is not None
        async with self._slots:
            output = await engine.async_generate(**kwargs)
        if isinstance(output, list) and len(output) == 1:
            output = output[0]
        if not isinstance(output, dict) or not isinstance(output.get("text"), str):
            raise BackendRequestError(
                f"sglang.Engine returned {type(output).__name__} for {rid}, not an output dict"
            )
        completion, raw = sglang_output_completion(output, request)
        if completion is None:
            if request.request_id in self._cancelled or raw.get("status_code") is None:
                raise self._cancelled_error(request.request_id)
            raise BackendRequestError(
                f"sglang.Engine aborted {rid} ({raw.get('message') or 'Aborted'}, "
                f"status {raw.get('status_code')}); check the prompt length and the engine log"
            )
        return completion

    def _cancelled_error(self, request_id: str) -> RequestCancelledError:
        return RequestCancelledError(f"request {request_id} was cancelled (sglang.Engine)")

    async def cancel(self, request_id: str) -> None:
        """Abort a request: its engine tasks are cancelled, which aborts them on the engine."""
        tasks = self._tasks.get(request_id)
        if not tasks:
            return
        self._cancelled.add(request_id)
        for task in tasks:
            task.cancel()

    async def health(self) -> None:
        """Start the engine if needed (raises the install hint without sglang)."""
        await self.engine()

    async def aclose(self) -> None:
        """Shut the engine down (it is started again on the next request)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)
