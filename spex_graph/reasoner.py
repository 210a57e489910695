"""`SpexReasoner`: the search graph as a LangChain Runnable.

Drop it into a chain (`prompt | reasoner`), call `invoke`/`batch` from sync
code or `ainvoke`/`abatch`/`astream` from async code. All queries of one
reasoner share one dispatcher and one speculation budget. Every reasoner runs
its queries on one process-wide event loop (a daemon thread), so sync and
async callers can share backends and their connections stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from spex_graph.algorithms.base import SearchAlgorithm
from spex_graph.backends.base import Backend
from spex_graph.config import SearchConfig
from spex_graph.context import SearchContext
from spex_graph.errors import ConfigError
from spex_graph.graph import build_search_graph, step_limit_config
from spex_graph.result import SearchResult
from spex_graph.rewards.base import RewardModel
from spex_graph.runtime.loop import shared_loop
from spex_graph.tasks.base import Problem, Task


class ReasonerInput(BaseModel):
    """A question for the reasoner (a plain string works too)."""

    question: str = Field(
        description="The problem to solve, stated in full: a math word problem, a "
        "competition math problem, or four numbers for the Game of 24."
    )


#: What an agent reads about the reasoner's tool (`SpexReasoner.as_tool`).
TOOL_DESCRIPTION = (
    "Solves a math problem step by step with a reward-guided Tree-of-Thought search and "
    "returns the final answer. Pass the whole problem as 'question'."
)


class SpexReasoner(Runnable[Any, Any]):
    """A reward-guided Tree-of-Thought reasoner as a LangChain Runnable.

    Input: a question string, a dict with "question" (or "problem"), a
    `Problem`, or anything with `to_string()` (a PromptValue); `None` resumes
    a checkpointed thread given in `config["configurable"]["thread_id"]`.
    Output: a `SearchResult`, or just the answer string with `output="answer"`.

    Args:
        policy: generation backend (default: the embedded CPU engine).
        reward: reward model (default: the task's default reward).
        task, algorithm: override the objects the config would build.
        checkpointer: a LangGraph checkpointer to make runs resumable.
        output: "result" (SearchResult) or "answer" (str | None).
        **options: SearchConfig fields (task="gsm8k", algorithm="rebase", width=8, ...).
    """

    def __init__(
        self,
        policy: Backend | None = None,
        reward: RewardModel | None = None,
        *,
        config: SearchConfig | None = None,
        task: Task | str | None = None,
        algorithm: SearchAlgorithm | str | None = None,
        checkpointer: Any = None,
        output: str = "result",
        **options: Any,
    ) -> None:
        if output not in ("result", "answer"):
            raise ConfigError(f"output must be 'result' or 'answer', not {output!r}")
        self.context = SearchContext.create(
            policy, reward, config=config, task=task, algorithm=algorithm, **options
        )
        self.graph = build_search_graph(checkpointer=checkpointer)
        self.output = output
        self._loop = shared_loop()

    # -- Runnable interface -------------------------------------------------

    @property
    def InputType(self) -> type[ReasonerInput]:
        """The declared input: ``{"question": str}`` (a plain string is accepted too)."""
        return ReasonerInput

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """`ReasonerInput`: what LangChain tools, agents and servers see."""
        return ReasonerInput

    def as_tool(
        self,
        args_schema: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
    ) -> BaseTool:
        """The reasoner as a tool an agent calls with ``{"question": ...}``.

        Defaults: name ``spex_reasoner`` and `TOOL_DESCRIPTION`. Build the reasoner with
        ``output="answer"`` so the tool returns just the answer.
        """
        with warnings.catch_warnings():  # as_tool is marked beta in langchain-core
            warnings.simplefilter("ignore", LangChainBetaWarning)
            return super().as_tool(
                args_schema,
                name=name or "spex_reasoner",
                description=description or TOOL_DESCRIPTION,
                arg_types=arg_types,
            )

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Search one question and return its result."""
        return self._loop.run(self._search(input, config))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Search one question (async); concurrent calls share the dispatcher."""
        return await self._loop.arun(self._search(input, config))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Yield progress events (dicts with an "event" key) as the tree grows, then the result."""
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        caller = asyncio.get_running_loop()

        def put(item: tuple[str, Any]) -> None:
            # The consumer may be gone (Ctrl-C closed its loop): nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                caller.call_soon_threadsafe(queue.put_nowait, item)

        graph_input, query_id = self._query_input(input, config)

        async def pump() -> None:
            try:
                async for mode, chunk in self.graph.astream(
                    graph_input,
                    self._graph_config(config),
                    context=self.context,
                    stream_mode=["custom", "values"],
                ):
                    if mode == "custom":
                        put(("event", chunk))
                    elif isinstance(chunk, dict) and "result" in chunk:
                        put(("result", self._output(chunk["result"])))
            except BaseException as exc:  # forwarded to the consumer
                put(("error", exc))
            finally:
                await self._end_query(query_id)
                put(("done", None))

        future = self._loop.submit(pump())
        try:
            while True:
                kind, item = await queue.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise item
                yield item
        finally:
            future.cancel()

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Sync version of `astream`."""
        loop = asyncio.new_event_loop()
        agen = self.astream(input, config).__aiter__()
        try:
            while True:
                try:
                    yield loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    break
        finally:
            # a consumer that stops early (break, close, Ctrl-C) ends the search too
            loop.run_until_complete(agen.aclose())  # type: ignore[attr-defined]
            loop.close()

    # -- helpers --------------------------------------------------------------

    async def _search(self, input: Any, config: RunnableConfig | None) -> Any:
        graph_input, query_id = self._query_input(input, config)
        try:
            out = await self.graph.ainvoke(
                graph_input, self._graph_config(config), context=self.context
            )
        finally:
            await self._end_query(query_id)
        return self._output(out["result"])

    def _query_input(
        self, input: Any, config: RunnableConfig | None
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The graph input with its query id fixed up front, so whatever ends the query
        (success, error, cancellation, timeout) can close its dispatcher session."""
        graph_input = self._graph_input(input)
        thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
        if graph_input is None:  # resuming: the checkpoint holds the id
            return None, str(thread_id) if thread_id else None
        if not graph_input.get("query_id"):
            graph_input["query_id"] = str(thread_id) if thread_id else uuid.uuid4().hex[:12]
        return graph_input, str(graph_input["query_id"])

    async def _end_query(self, query_id: str | None) -> None:
        """Close the query's session: abort its requests, release its budget (idempotent)."""
        if query_id is not None:
            await asyncio.shield(self.context.dispatcher.close(query_id))

    def _output(self, result: dict[str, Any]) -> Any:
        parsed = SearchResult.model_validate(result)
        return parsed.answer if self.output == "answer" else parsed

    @staticmethod
    def _graph_config(config: RunnableConfig | None) -> RunnableConfig:
        return step_limit_config(config)

    def _graph_input(self, input: Any) -> dict[str, Any] | None:
        if input is None:
            return None
        if isinstance(input, str):
            return {"question": input}
        if isinstance(input, Problem):
            return {"problem": dataclasses.asdict(input)}
        if isinstance(input, ReasonerInput):
            return {"question": input.question}
        if isinstance(input, dict):
            if "question" in input or "problem" in input:
                out = dict(input)
                if isinstance(out.get("problem"), Problem):
                    out["problem"] = dataclasses.asdict(out["problem"])
                return out
            raise ConfigError("a dict input needs a 'question' or 'problem' key")
        if hasattr(input, "to_string"):
            return {"question": input.to_string()}
        raise ConfigError(
            f"cannot search a {type(input).__name__}; pass a question string or a dict "
            "with 'question'"
        )

    async def aclose(self) -> None:
        """Close the backends (stops the embedded engine)."""
        await self._loop.arun(self._close())

    def close(self) -> None:
        """Sync `aclose`."""
        self._loop.run(self._close())

    async def _close(self) -> None:
        await self.context.policy.aclose()
        await self.context.reward.aclose()
