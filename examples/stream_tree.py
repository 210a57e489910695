"""Watch the tree grow: the reasoner's search events, streamed two ways.

python examples/stream_tree.py [--backend fake|embedded] [--events] "question"

Default: ``reasoner.astream`` yields each event dict, then the `SearchResult`.
``--events``: LangChain's ``astream_events(version="v2")``, what a UI would consume;
each search event (select / expand / evaluate / answer) arrives as an
``on_chain_stream`` event whose ``data["chunk"]`` is a dict with an ``"event"`` key,
among the graph nodes' own start/end events; the top-level ``on_chain_end`` carries
the graph's final state (``result`` holds the `SearchResult`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

from spex_graph import SearchResult, SpexReasoner
from spex_graph.defaults import make_backend


def describe(event: dict[str, Any]) -> str:
    """One line for a search event."""
    kind = event["event"]
    if kind == "expand":
        return "expand   " + ", ".join(
            f"{n['parent']}->{n['id']} {n['text'][:40]!r}" for n in event["new_nodes"]
        )
    if kind == "evaluate":
        return "evaluate " + ", ".join(f"{k}:{v:.2f}" for k, v in event["rewards"].items())
    if kind == "select":
        return f"select   {event['orders']} (tree size {event['tree_size']})"
    return f"{kind:8} {event}"


async def via_astream(reasoner: SpexReasoner, question: str) -> AsyncIterator[Any]:
    """Search events and the result from `SpexReasoner.astream`."""
    async for item in reasoner.astream(question):
        yield item


async def via_astream_events(reasoner: SpexReasoner, question: str) -> AsyncIterator[Any]:
    """The same, picked out of LangChain's ``astream_events(version="v2")``.

    The root's ``on_chain_end`` can arrive before the last ``on_chain_stream`` chunks
    are flushed, so the result is held back until the event stream ends."""
    result = None
    async for ev in reasoner.astream_events(question, version="v2"):
        chunk = ev["data"].get("chunk")
        if ev["event"] == "on_chain_stream" and isinstance(chunk, dict) and "event" in chunk:
            yield chunk
        elif ev["event"] == "on_chain_end" and not ev["parent_ids"]:
            result = SearchResult.model_validate(ev["data"]["output"]["result"])
    if result is not None:
        yield result


async def run(backend: str, question: str, events: bool) -> None:
    """Print one line per search event, then the answer."""
    reasoner = SpexReasoner(make_backend(backend), task="gsm8k", algorithm="rebase", width=3)
    stream = via_astream_events if events else via_astream
    try:
        async for item in stream(reasoner, question):
            if isinstance(item, SearchResult):
                print(f"answer: {item.answer} after {item.nodes} nodes")
            else:
                print(describe(item))
    finally:
        await reasoner.aclose()


def main() -> None:
    """Parse arguments and stream."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--events", action="store_true", help="use astream_events v2")
    parser.add_argument("question", nargs="?", default="What is 12 * 7 + 5?")
    args = parser.parse_args()
    asyncio.run(run(args.backend, args.question, args.events))


if __name__ == "__main__":
    main()
