"""SpexReasoner as a LangChain Runnable: invoke, batch, async, streaming, chains."""

from __future__ import annotations

import pytest
from helpers import AnswerReward
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda

from spex_graph import SearchResult, SpexReasoner
from spex_graph.backends.fake import ScriptedBackend, toy_math_script
from spex_graph.errors import ConfigError


def make(**kw):  # type: ignore[no-untyped-def]
    return SpexReasoner(
        ScriptedBackend(script=toy_math_script()), AnswerReward(), task="gsm8k", width=4, **kw
    )


def test_invoke_returns_a_search_result() -> None:
    reasoner = make()
    result = reasoner.invoke("What is 6 x 7?")
    assert isinstance(result, SearchResult)
    assert result.answer == "42"
    assert result.correct is None  # no gold given
    reasoner.close()


def test_batch_and_problem_input_grade_against_gold() -> None:
    from spex_graph.tasks.base import Problem

    reasoner = make()
    problems = [
        Problem(id=f"p{i}", task="gsm8k", question=f"q{i}", gold="42", meta={}) for i in range(3)
    ]
    results = reasoner.batch(problems)
    assert [r.correct for r in results] == [r.answer == "42" for r in results]
    assert len({r.query_id for r in results}) == 3
    reasoner.close()


async def test_abatch_and_ainvoke_from_another_loop() -> None:
    reasoner = make(output="answer")
    answers = await reasoner.abatch(["a", "b", "c", "d"])
    assert all(a in ("42", "41") for a in answers)
    assert await reasoner.ainvoke({"question": "a"}) == answers[0]
    await reasoner.aclose()


async def test_astream_yields_events_then_the_result() -> None:
    reasoner = make()
    items = [item async for item in reasoner.astream("q")]
    assert isinstance(items[-1], SearchResult)
    events = [i["event"] for i in items[:-1]]
    assert "expand" in events and "evaluate" in events
    await reasoner.aclose()


def test_reasoner_composes_in_a_chain() -> None:
    chain = (
        PromptTemplate.from_template("Solve: {problem}")
        | make(output="answer")
        | RunnableLambda(lambda a: f"The answer is {a}")
    )
    assert chain.invoke({"problem": "6 x 7"}) == "The answer is 42"


def test_bad_inputs_and_options_give_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="max_depth"):
        make(max_depth=0)
    with pytest.raises(ConfigError, match="unknown algorithm"):
        SpexReasoner(ScriptedBackend(), AnswerReward(), algorithm="dfs")
    with pytest.raises(ConfigError, match="output"):
        make(output="tree")
    reasoner = make()
    with pytest.raises(ConfigError, match="question"):
        reasoner.invoke({"prompt": "x"})
    with pytest.raises(ConfigError, match="cannot search"):
        reasoner.invoke(42)
    reasoner.close()


def test_input_schema_is_a_question() -> None:
    schema = make().get_input_jsonschema()
    assert schema["required"] == ["question"]
    assert schema["properties"]["question"]["type"] == "string"


async def test_as_tool_works_without_arguments() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tool = make(output="answer").as_tool()
    assert tool.name == "spex_reasoner" and "math problem" in tool.description
    assert set(tool.args) == {"question"}
    assert tool.tool_call_schema.model_json_schema()["required"] == ["question"]
    assert tool.invoke({"question": "What is 6 x 7?"}) in ("42", "41")
    assert await tool.ainvoke({"question": "What is 6 x 7?"}) in ("42", "41")
    with pytest.raises(Exception, match="question"):
        tool.invoke({})  # the schema rejects a call without the question
