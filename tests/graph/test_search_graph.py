"""The compiled LangGraph search graph, end to end on the fake backend."""

from __future__ import annotations

import asyncio

import pytest
from helpers import AnswerReward, fake_context
from langgraph.checkpoint.memory import InMemorySaver

from spex_graph import SearchContext, SearchTree, build_search_graph
from spex_graph.backends.fake import ScriptedBackend, toy_math_script
from spex_graph.errors import BackendRequestError, ConfigError
from spex_graph.tree import NodeStatus


def decisions(out: dict) -> list:  # type: ignore[type-arg]
    return SearchTree.model_validate(out["tree"]).decisions()


def test_graph_builds_with_no_arguments_and_draws_expand_and_evaluate() -> None:
    graph = build_search_graph()
    mermaid = graph.get_graph().draw_mermaid()
    for node in ("start", "select", "expand", "evaluate", "aggregate"):
        assert node in mermaid


async def test_rebase_search_runs_to_completion_and_picks_the_majority_answer() -> None:
    ctx = fake_context("rebase", width=8)
    out = await build_search_graph().ainvoke({"question": "What is 6 x 7?"}, context=ctx)
    result = out["result"]
    assert result["answer"] == "42"
    assert result["algorithm"] == "rebase"
    tree = SearchTree.model_validate(out["tree"])
    leaves = tree.leaves()
    assert 1 <= len(leaves) <= 8
    assert all(n.reward is not None for n in tree.nodes[1:])
    assert result["chosen_path"][-1].endswith("\\boxed{42}.")
    assert result["tokens_primary"] > 0


@pytest.mark.parametrize("algorithm", ["rebase", "beam", "ets", "bestfirst", "mcts", "bon"])
async def test_every_algorithm_runs_through_the_graph(algorithm: str) -> None:
    ctx = fake_context(algorithm, width=4)
    out = await build_search_graph().ainvoke({"question": "q"}, context=ctx)
    assert out["result"]["answer"] in ("42", "41")
    assert out["result"]["nodes"] > 1


async def test_same_seed_gives_the_same_tree_and_answer() -> None:
    graph = build_search_graph()
    a = await graph.ainvoke({"question": "q"}, context=fake_context(seed=3))
    b = await graph.ainvoke({"question": "q"}, context=fake_context(seed=3))
    c = await graph.ainvoke({"question": "q"}, context=fake_context(seed=4))
    assert decisions(a) == decisions(b)
    assert decisions(a) != decisions(c)


async def test_custom_stream_reports_the_tree_growing() -> None:
    ctx = fake_context(width=4)
    events = [
        chunk
        async for chunk in build_search_graph().astream(
            {"question": "q"}, context=ctx, stream_mode="custom"
        )
    ]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "select" and kinds[-1] == "answer"
    assert "expand" in kinds and "evaluate" in kinds
    sizes = [e["tree_size"] for e in events if e["event"] == "expand"]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


async def test_concurrent_queries_share_one_context_without_interference() -> None:
    ctx = fake_context(width=4)
    graph = build_search_graph()
    alone = await graph.ainvoke({"question": "q0"}, context=fake_context(width=4))
    outs = await asyncio.gather(
        *(graph.ainvoke({"question": f"q{i}"}, context=ctx) for i in range(6))
    )
    assert decisions(outs[0]) == decisions(alone)
    assert len({o["result"]["query_id"] for o in outs}) == 6
    assert not ctx.dispatcher._sessions  # every session closed


async def test_depth_cap_makes_every_path_terminal() -> None:
    backend = ScriptedBackend(script=toy_math_script(depth_to_answer=50))
    ctx = fake_context("rebase", width=4, backend=backend, max_depth=3)
    out = await build_search_graph().ainvoke({"question": "q"}, context=ctx)
    tree = SearchTree.model_validate(out["tree"])
    assert max(n.depth for n in tree.nodes) == 3
    assert all(n.status == NodeStatus.TERMINAL for n in tree.nodes if n.depth == 3)


async def test_empty_question_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="question"):
        await build_search_graph().ainvoke({"question": ""}, context=fake_context())


class FlakyBackend(ScriptedBackend):
    """Fails every request after `budget` successful ones."""

    budget: int = 10

    async def generate(self, request):  # type: ignore[no-untyped-def]
        if len(self.calls) >= self.budget:
            self.calls.append(request)
            raise BackendRequestError("engine fell over; restart it")
        return await super().generate(request)


async def test_interrupted_checkpointed_run_resumes_to_the_same_result() -> None:
    reference = await build_search_graph().ainvoke({"question": "q"}, context=fake_context(width=6))

    saver = InMemorySaver()
    graph = build_search_graph(checkpointer=saver)
    config = {"configurable": {"thread_id": "t1"}}
    flaky = FlakyBackend(script=toy_math_script())
    flaky.budget = 9
    crashing = SearchContext.create(
        flaky, AnswerReward(), task="gsm8k", algorithm="rebase", width=6
    )
    with pytest.raises(BackendRequestError):
        await graph.ainvoke({"question": "q", "query_id": "resumed"}, config, context=crashing)
    snapshot = await graph.aget_state(config)
    assert snapshot.next == ("expand",)  # stopped mid-search, state saved

    healthy = fake_context(width=6)
    out = await graph.ainvoke(None, config, context=healthy)
    assert out["result"]["answer"] == reference["result"]["answer"]
    assert decisions(out) == decisions(reference)


async def test_sqlite_checkpointer_resumes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    reference = await build_search_graph().ainvoke({"question": "q"}, context=fake_context(width=4))
    db = str(tmp_path / "ckpt.sqlite")
    config = {"configurable": {"thread_id": "s1"}}
    flaky = FlakyBackend(script=toy_math_script())
    flaky.budget = 5
    async with AsyncSqliteSaver.from_conn_string(db) as saver:
        graph = build_search_graph(checkpointer=saver)
        crashing = SearchContext.create(flaky, AnswerReward(), task="gsm8k", width=4)
        with pytest.raises(BackendRequestError):
            await graph.ainvoke({"question": "q"}, config, context=crashing)
    async with AsyncSqliteSaver.from_conn_string(db) as saver:  # a fresh process would do this
        graph = build_search_graph(checkpointer=saver)
        out = await graph.ainvoke(None, config, context=fake_context(width=4))
    assert decisions(out) == decisions(reference)
