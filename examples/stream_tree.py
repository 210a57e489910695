"""Watch the tree grow: stream the search graph's progress events.

python examples/stream_tree.py [--backend fake|embedded] "question"
"""

from __future__ import annotations

import argparse
import asyncio

from spex_graph import SpexReasoner
from spex_graph.defaults import make_backend


async def run(backend: str, question: str) -> None:
    """Print one line per graph event, then the answer."""
    reasoner = SpexReasoner(make_backend(backend), task="gsm8k", algorithm="rebase", width=4)
    async for item in reasoner.astream(question):
        if isinstance(item, dict):
            if item["event"] == "expand":
                for node in item["new_nodes"]:
                    print(f"  + node {node['id']} (parent {node['parent']}): {node['text'][:70]}")
            elif item["event"] == "evaluate":
                print(f"  rewards {item['rewards']}")
        else:
            print(f"answer: {item.answer}  (hit rate {item.speculation_hit_rate:.2f})")
    await reasoner.aclose()


def main() -> None:
    """Parse arguments and stream."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("question", nargs="?", default="What is 12 * 7 + 5?")
    args = parser.parse_args()
    asyncio.run(run(args.backend, args.question))


if __name__ == "__main__":
    main()
