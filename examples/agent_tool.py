"""The reasoner as a tool of a tool-calling agent (LangGraph's prebuilt ReAct agent).

    pip install 'spex-graph[agent]'        # langchain-openai
    python examples/agent_tool.py          # chat model AND reasoner: the embedded CPU model
    python examples/agent_tool.py --model 1.5b "A farmer has 17 rows of 23 plants..."
    python examples/agent_tool.py --chat-url http://host:8000/v1 --chat-model NAME
        # any OpenAI-compatible server with tool calling (vLLM, SGLang --tool-call-parser)
    python examples/agent_tool.py --chat-model gpt-4o-mini          # OPENAI_API_KEY set

By default one embedded llama-server (started with ``--jinja``) is both the agent's chat
model, through its OpenAI-compatible ``/v1/chat/completions``, and the policy of the
reasoner's Tree-of-Thought search. The agent decides when to call ``spex_reasoner``; the
tool runs the search and hands the answer back to the agent, which answers the user.

The 0.5B/1.5B Qwen2.5-Coder models write a tool call as bare JSON
(``{"name": ..., "arguments": {...}}``, sometimes in a json fence) rather than inside the
``<tool_call>`` tags llama-server parses, so `JsonToolCallChat` reads such a reply back
into a tool call, and a one-exchange example in the prompt shows them when to call.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
import warnings
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from spex_graph import SpexReasoner
from spex_graph.defaults import make_backend

SYSTEM = "You are a helpful assistant. Use the spex_reasoner tool for any math."

# One worked exchange: small local models copy its shape (call for math with the whole
# question, then answer). With a shortened question here, or "The answer is 15." as the
# last line, the 0.5B answered by itself.
_EXAMPLE_QUESTION = "Tom has 3 bags with 5 apples each. How many apples does he have?"
EXAMPLE: list[BaseMessage] = [
    HumanMessage(_EXAMPLE_QUESTION),
    AIMessage(
        "",
        tool_calls=[
            {"name": "spex_reasoner", "args": {"question": _EXAMPLE_QUESTION}, "id": "example-1"}
        ],
    ),
    ToolMessage("15", tool_call_id="example-1"),
    AIMessage("Tom has 15 apples."),
]


def build_agent(
    chat_model: BaseChatModel, reasoner: SpexReasoner, *, worked_example: bool = False
) -> Any:
    """A ReAct agent whose one tool is the reasoner (with `EXAMPLE` in its prompt if asked)."""

    def prompt(state: dict[str, Any]) -> list[BaseMessage]:
        shots = EXAMPLE if worked_example else []
        return [SystemMessage(SYSTEM), *shots, *state["messages"]]

    with warnings.catch_warnings():  # LangGraph 1.x points new code at langchain.agents
        warnings.simplefilter("ignore", DeprecationWarning)
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(chat_model, [reasoner.as_tool()], prompt=prompt)


def ask(agent: Any, question: str) -> list[BaseMessage]:
    """The agent's conversation after it answers ``question``."""
    state = agent.invoke({"messages": [("user", question)]})
    messages: list[BaseMessage] = state["messages"]
    return messages


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def json_tool_call(content: Any) -> dict[str, Any] | None:
    """A tool call written as a bare JSON reply (``{"name": ..., "arguments": {...}}``)."""
    if not isinstance(content, str):
        return None
    text = _FENCE.sub("", content.strip())
    if not text.startswith("{"):
        return None  # prose that merely contains JSON is an answer, not a call
    try:
        call, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    args = call.get("arguments", call.get("parameters"))
    if not isinstance(args, dict):
        return None
    return {"name": call["name"], "args": args, "id": f"call-{uuid.uuid4().hex[:12]}"}


def _local_chat_class() -> type[BaseChatModel]:
    from langchain_openai import ChatOpenAI

    class JsonToolCallChat(ChatOpenAI):
        """ChatOpenAI that also reads a bare-JSON tool call in the reply's text."""

        def _create_chat_result(self, response: Any, generation_info: Any = None) -> Any:
            from langchain_core.outputs import ChatGeneration

            result = super()._create_chat_result(response, generation_info)
            for k, gen in enumerate(result.generations):
                message = gen.message
                call = json_tool_call(message.content) if isinstance(message, AIMessage) else None
                if call is not None and not message.tool_calls:  # type: ignore[union-attr]
                    fixed = message.model_copy(update={"content": "", "tool_calls": [call]})
                    result.generations[k] = ChatGeneration(
                        message=fixed, generation_info=gen.generation_info
                    )
            return result

    return JsonToolCallChat


def _require_langchain_openai() -> None:
    try:
        import langchain_openai  # noqa: F401
    except ImportError:
        raise SystemExit(
            "agent_tool.py: error: the agent needs a tool-calling chat model; "
            "pip install 'spex-graph[agent]' (or pass your own model to build_agent)"
        ) from None


def main() -> None:
    """Ask the agent one question and print the conversation."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="0.5b", help="embedded model: 0.5b or 1.5b")
    parser.add_argument("--chat-model", default=None, help="a remote chat model's name")
    parser.add_argument("--chat-url", default=None, help="its OpenAI-compatible base URL")
    parser.add_argument("--backend", default="embedded", help="the reasoner's engine")
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="embedded CPU threads")
    parser.add_argument(
        "question",
        nargs="?",
        default="A baker makes 12 rolls per tray and bakes 7 trays. How many rolls is that?",
    )
    args = parser.parse_args()
    _require_langchain_openai()
    from langchain_openai import ChatOpenAI

    from spex_graph.runtime.loop import run_on_shared_loop

    local = args.chat_model is None and args.chat_url is None
    if local:
        from spex_graph.backends.embedded import EmbeddedBackend

        engine = EmbeddedBackend(args.model, threads=args.threads, server_args=("--jinja",))
        url = run_on_shared_loop(engine.base_url())
        chat: BaseChatModel = _local_chat_class()(
            model=engine.model, base_url=f"{url}/v1", api_key="none", temperature=0, max_tokens=256
        )
        backend = engine if args.backend == "embedded" else make_backend(args.backend)
    else:
        extra = {"base_url": args.chat_url, "api_key": "none"} if args.chat_url else {}
        chat = ChatOpenAI(model=args.chat_model or "default", temperature=0, **extra)
        backend = make_backend(args.backend, model=args.model)
    reasoner = SpexReasoner(backend, task="gsm8k", width=args.width, output="answer")
    agent = build_agent(chat, reasoner, worked_example=local)
    for message in ask(agent, args.question):
        message.pretty_print()
    reasoner.close()


if __name__ == "__main__":
    main()
