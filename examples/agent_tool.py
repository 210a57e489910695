"""The reasoner as a tool of a tool-calling agent (LangGraph's prebuilt ReAct agent).

    pip install langchain-openai
    python examples/agent_tool.py --chat-model gpt-4o-mini           # OPENAI_API_KEY set
    python examples/agent_tool.py --chat-url http://host:8000/v1 --chat-model NAME
        # any OpenAI-compatible server with tool calling (vLLM, SGLang --tool-call-parser)

The agent decides when to call ``spex_reasoner``; the tool runs the Tree-of-Thought
search (on the embedded CPU model unless ``--backend`` says otherwise) and hands the
answer back to the agent.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from spex_graph import SpexReasoner
from spex_graph.defaults import make_backend


def build_agent(chat_model: BaseChatModel, reasoner: SpexReasoner) -> Any:
    """A ReAct agent whose one tool is the reasoner."""
    with warnings.catch_warnings():  # LangGraph 1.x points new code at langchain.agents
        warnings.simplefilter("ignore", DeprecationWarning)
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(
            chat_model,
            [reasoner.as_tool()],
            prompt="You are a helpful assistant. Use the spex_reasoner tool for any math.",
        )


def ask(agent: Any, question: str) -> list[BaseMessage]:
    """The agent's conversation after it answers ``question``."""
    state = agent.invoke({"messages": [("user", question)]})
    messages: list[BaseMessage] = state["messages"]
    return messages


def _chat_model(args: argparse.Namespace) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise SystemExit(
            "agent_tool.py: error: the agent needs a tool-calling chat model; "
            "pip install langchain-openai (or pass your own model to build_agent)"
        ) from None
    extra = {"base_url": args.chat_url, "api_key": "none"} if args.chat_url else {}
    return ChatOpenAI(model=args.chat_model, temperature=0, **extra)


def main() -> None:
    """Ask the agent one question and print the conversation."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--chat-model", default="gpt-4o-mini")
    parser.add_argument("--chat-url", default=None)
    parser.add_argument("--backend", default="embedded")
    parser.add_argument(
        "question",
        nargs="?",
        default="A baker makes 12 rolls per tray and bakes 7 trays. How many rolls is that?",
    )
    args = parser.parse_args()
    reasoner = SpexReasoner(make_backend(args.backend), task="gsm8k", width=4, output="answer")
    agent = build_agent(_chat_model(args), reasoner)
    for message in ask(agent, args.question):
        message.pretty_print()
    reasoner.close()


if __name__ == "__main__":
    main()
