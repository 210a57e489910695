"""The compiled search graph as one node of your own LangGraph StateGraph.

python examples/subgraph.py [--backend fake|embedded|sglang --backend-url URL]

The outer graph cleans the question, runs the search graph as a subgraph node (it reads
``question`` and writes ``result`` in the shared state) and writes a reply from the
result. The outer graph declares ``context_schema=SearchContext`` so the search context
passed at invoke time reaches the subgraph.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from spex_graph import SearchContext, build_search_graph
from spex_graph.defaults import make_backend


class TutorState(TypedDict, total=False):
    """The outer graph's state; ``question`` and ``result`` are shared with the subgraph."""

    question: str
    result: dict[str, Any]
    reply: str


def clean_question(state: TutorState) -> TutorState:
    """Normalise whitespace before the search sees the question."""
    return {"question": " ".join(state["question"].split())}


def write_reply(state: TutorState) -> TutorState:
    """Turn the search result into a sentence."""
    result = state["result"]
    steps = len(result["chosen_path"])
    return {"reply": f"The answer is {result['answer']} ({steps} steps, {result['nodes']} nodes)."}


def build_tutor() -> Any:
    """Compile clean_question -> search (the spex-graph subgraph) -> write_reply."""
    builder = StateGraph(TutorState, context_schema=SearchContext)
    builder.add_node("clean_question", clean_question)
    builder.add_node("search", build_search_graph())
    builder.add_node("write_reply", write_reply)
    builder.add_edge(START, "clean_question")
    builder.add_edge("clean_question", "search")
    builder.add_edge("search", "write_reply")
    builder.add_edge("write_reply", END)
    return builder.compile()


async def run(backend: str, url: str | None, question: str) -> str:
    """Run the outer graph once and return its reply."""
    ctx = SearchContext.create(make_backend(backend, url), task="gsm8k", width=4)
    try:
        out = await build_tutor().ainvoke({"question": question}, context=ctx)
    finally:
        await ctx.policy.aclose()
    reply: str = out["reply"]
    return reply


def main() -> None:
    """Parse arguments, run, print the reply."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--backend-url", default=None)
    parser.add_argument("question", nargs="?", default="  What is 12 *   7 + 5?  ")
    args = parser.parse_args()
    print(asyncio.run(run(args.backend, args.backend_url, args.question)))


if __name__ == "__main__":
    main()
