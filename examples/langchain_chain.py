"""SpexReasoner inside an ordinary LangChain chain (prompt | reasoner | formatter).

python examples/langchain_chain.py [--backend fake|embedded|sglang --backend-url URL]
"""

from __future__ import annotations

import argparse

from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda

from spex_graph import SpexReasoner
from spex_graph.defaults import make_backend


def main() -> None:
    """Build the chain and run it on two questions concurrently."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--backend-url", default=None)
    args = parser.parse_args()

    reasoner = SpexReasoner(
        make_backend(args.backend, args.backend_url), task="gsm8k", width=4, output="answer"
    )
    chain = (
        PromptTemplate.from_template("{question}")
        | reasoner
        | RunnableLambda(lambda answer: f"Final answer: {answer}")
    )
    questions = [
        {"question": "A baker makes 12 rolls per tray and bakes 7 trays. How many rolls?"},
        {"question": "Tom has 45 marbles and gives away 18. How many are left?"},
    ]
    for line in chain.batch(questions):  # both searches share one dispatcher and budget
        print(line)
    reasoner.close()


if __name__ == "__main__":
    main()
