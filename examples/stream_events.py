"""Tree events for a UI: `astream_events(version="v2")` on the reasoner.

python examples/stream_events.py [--backend fake|embedded] "question"

Each search event (select / expand / evaluate / answer) arrives as an ``on_chain_stream``
event whose ``data["chunk"]`` is a dict with an ``"event"`` key; LangChain's own
start/end events of the graph's nodes come along too, and the top-level
``on_chain_end`` carries the graph's final state (``result`` holds the `SearchResult`).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from spex_graph import SearchResult, SpexReasoner
from spex_graph.defaults import make_backend


def describe(event: dict[str, Any]) -> str | None:
    """One line for a tree event, None for anything else."""
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


async def run(backend: str, question: str) -> SearchResult:
    """Print the tree events as they arrive and return the final result."""
    reasoner = SpexReasoner(make_backend(backend), task="gsm8k", algorithm="rebase", width=3)
    result: SearchResult | None = None
    try:
        async for ev in reasoner.astream_events(question, version="v2"):
            chunk = ev["data"].get("chunk")
            if ev["event"] == "on_chain_stream" and isinstance(chunk, dict) and "event" in chunk:
                line = describe(chunk)
                if line:
                    print(line)
            elif ev["event"] == "on_chain_end" and not ev["parent_ids"]:
                output = ev["data"]["output"]  # the search graph's final state
                result = SearchResult.model_validate(output["result"])
    finally:
        await reasoner.aclose()
    assert isinstance(result, SearchResult)
    print(f"answer: {result.answer} after {result.nodes} nodes")
    return result


def main() -> None:
    """Parse arguments and stream."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("question", nargs="?", default="What is 12 * 7 + 5?")
    args = parser.parse_args()
    asyncio.run(run(args.backend, args.question))


if __name__ == "__main__":
    main()
