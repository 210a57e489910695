"""Examples run (on the fake backend) and the Studio graph loads and runs from langgraph.json."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

ROOT = Path(__file__).resolve().parents[2]


def run_example(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_langchain_chain_example() -> None:
    out = run_example("examples/langchain_chain.py", "--backend", "fake")
    assert out.count("Final answer: ") == 2


@pytest.mark.parametrize("api", [[], ["--events"]], ids=["astream", "astream_events-v2"])
def test_stream_example(api: list[str]) -> None:
    out = run_example("examples/stream_tree.py", "--backend", "fake", *api).splitlines()
    kinds = [line.split()[0] for line in out]
    assert kinds[:3] == ["select", "expand", "evaluate"]
    assert "answer" in kinds[:-1] and out[-1].startswith("answer: ")
    assert "0->1 " in out[1]


def _studio_graph():  # type: ignore[no-untyped-def]
    config = json.loads((ROOT / "integrations/studio/langgraph.json").read_text())
    module_path, attr = config["graphs"]["spex_search"].split(":")
    spec = importlib.util.spec_from_file_location(
        "studio_graph", ROOT / "integrations/studio" / module_path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


async def test_studio_graph_runs_without_a_context(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    graph = _studio_graph()
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    monkeypatch.setenv("SPEX_WIDTH", "2")
    out = await graph.ainvoke({"question": "What is 6 x 7?"})
    assert out["result"]["answer"] in ("42", "41")
    assert out["result"]["width"] == 2
    assert "expand" in graph.get_graph().draw_mermaid()


async def test_studio_graph_builds_its_context_from_a_dict_like_a_server(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`langgraph dev` passes the assistant's context as a dict, often empty."""
    graph = _studio_graph()
    monkeypatch.setenv("SPEX_BACKEND", "fake")
    out = await graph.ainvoke({"question": "What is 6 x 7?"}, context={})
    assert out["result"]["answer"] in ("42", "41")
    out = await graph.ainvoke(
        {"question": "What is 6 x 7?"}, context={"width": 3, "algorithm": "beam"}
    )
    assert (out["result"]["algorithm"], out["result"]["width"]) == ("beam", 3)


def test_subgraph_example() -> None:
    out = run_example("examples/subgraph.py", "--backend", "fake")
    assert out.startswith("The answer is 4") and "nodes)." in out


async def test_subgraph_example_passes_the_cleaned_question_to_the_search() -> None:
    from spex_graph import SearchContext
    from spex_graph.defaults import make_backend

    module = _load_example("subgraph")
    ctx = SearchContext.create(make_backend("fake"), task="gsm8k", width=2)
    out = await module.build_tutor().ainvoke({"question": "  What is\n 6 x 7? "}, context=ctx)
    assert out["result"]["question"] == "What is 6 x 7?"
    assert out["reply"] == (
        f"The answer is {out['result']['answer']} ({len(out['result']['chosen_path'])} steps, "
        f"{out['result']['nodes']} nodes)."
    )


def _load_example(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # type hints resolve against the registered module
    spec.loader.exec_module(module)
    return module


class ScriptedToolChat(BaseChatModel):
    """A tool-calling chat model with a script: call the tool named in ``tool`` with the
    user's question, then answer with the tool's output."""

    tool: str = "spex_reasoner"
    seen_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-chat"

    def bind_tools(self, tools, **kwargs):  # type: ignore[no-untyped-def,override]
        self.seen_tools.extend(convert_to_openai_tool(t)["function"]["name"] for t in tools)
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def,override]
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if results:
            message = AIMessage(content=f"The answer is {results[-1].content}.")
        else:
            question = next(m for m in messages if isinstance(m, HumanMessage)).content
            message = AIMessage(
                content="",
                tool_calls=[{"name": self.tool, "args": {"question": question}, "id": "call-1"}],
            )
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_agent_example_calls_the_reasoner_as_a_tool() -> None:
    from spex_graph import SpexReasoner
    from spex_graph.defaults import make_backend

    module = _load_example("agent_tool")
    reasoner = SpexReasoner(make_backend("fake"), task="gsm8k", width=2, output="answer")
    model = ScriptedToolChat()
    messages = module.ask(module.build_agent(model, reasoner), "What is 6 x 7?")
    assert model.seen_tools == ["spex_reasoner"]
    call, result, final = messages[-3:]
    assert call.tool_calls[0]["args"] == {"question": "What is 6 x 7?"}
    assert isinstance(result, ToolMessage) and result.content in ("42", "41")
    assert final.content == f"The answer is {result.content}."


def test_agent_example_without_a_chat_model_package_says_what_to_install() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['langchain_openai'] = None; "
            "sys.argv = ['agent_tool.py', '--backend', 'fake']; "
            "import runpy; runpy.run_path('examples/agent_tool.py', run_name='__main__')",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "agent_tool.py: error: the agent needs a tool-calling chat model; "
        "pip install 'spex-graph[agent]' (or pass your own model to build_agent)"
    )


@pytest.mark.parametrize(
    ("reply", "call"),
    [
        ('{"name": "spex_reasoner", "arguments": {"question": "6 x 7?"}}', {"question": "6 x 7?"}),
        (
            '```json\n{"name": "spex_reasoner", "arguments": {"question": "q"}}\n```',
            {"question": "q"},
        ),
        ("The answer is 42.", None),
        ('Here is JSON: {"name": "x", "arguments": {}}', None),  # prose is an answer
        ('{"name": "spex_reasoner"}', None),
        ("{not json", None),
    ],
)
def test_agent_example_reads_a_bare_json_tool_call(reply: str, call: object) -> None:
    found = _load_example("agent_tool").json_tool_call(reply)
    assert (found and found["args"]) == call
    if found:
        assert found["name"] == "spex_reasoner" and found["id"].startswith("call-")


class _LocalModelServer:
    """/v1/chat/completions that answers like the small embedded models: a tool call as bare
    JSON in the text when the last message is the user's, else an answer from the tool result."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies = self.bodies = []  # type: ignore[var-annotated]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bodies.append(body)
                last = body["messages"][-1]
                if last["role"] == "tool":
                    text = f"The baker makes {last['content']} rolls."
                else:
                    args = {"question": last["content"]}
                    text = json.dumps({"name": "spex_reasoner", "arguments": args})
                reply = {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_agent_example_turns_a_local_models_json_reply_into_a_tool_call() -> None:
    """ChatOpenAI over HTTP, as the example uses it against llama-server."""
    pytest.importorskip("langchain_openai")
    from spex_graph import SpexReasoner
    from spex_graph.defaults import make_backend

    module = _load_example("agent_tool")
    local = _LocalModelServer()
    try:
        chat = module._local_chat_class()(model="m", base_url=local.url, api_key="none")
        reasoner = SpexReasoner(make_backend("fake"), task="gsm8k", width=2, output="answer")
        agent = module.build_agent(chat, reasoner, worked_example=True)
        messages = module.ask(agent, "What is 6 x 7?")
    finally:
        local.server.shutdown()
    call, result, final = messages[-3:]
    assert call.tool_calls[0]["name"] == "spex_reasoner"
    assert call.tool_calls[0]["args"] == {"question": "What is 6 x 7?"} and call.content == ""
    assert isinstance(result, ToolMessage) and result.content in ("42", "41")
    assert final.content == f"The baker makes {result.content} rolls."
    first = local.bodies[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["spex_reasoner"]
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]  # worked example
