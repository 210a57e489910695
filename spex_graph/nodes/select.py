"""`start` and `select`: set up the query and ask the algorithm what to expand."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from spex_graph.errors import ConfigError
from spex_graph.inputs import check_question
from spex_graph.nodes.common import (
    context_of,
    dump,
    load_search,
    load_tree,
    speculator_for,
)
from spex_graph.state import SearchGraphState
from spex_graph.tree import SearchTree


async def start_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Normalise the input into a problem, an empty tree and the algorithm's first state.

    A resumed run whose state already holds a tree keeps it.
    """
    ctx = context_of(runtime)
    if "tree" in state and "search" in state:
        return {}
    problem = state.get("problem")
    if problem is None:
        if state.get("question") is None:
            raise ConfigError("the search input needs a non-empty 'question' (or a 'problem')")
        question = check_question(state.get("question"))
        pid = hashlib.sha1(question.encode()).hexdigest()[:12]
        problem = {"id": pid, "task": ctx.task.name, "question": question, "gold": "", "meta": {}}
    elif not isinstance(problem, dict):
        problem = dataclasses.asdict(problem)
    check_question(problem.get("question"))
    query_id = state.get("query_id") or _thread_id() or uuid.uuid4().hex[:12]
    tree = SearchTree()
    search = ctx.algorithm.start(tree)
    return {
        "problem": problem,
        "question": problem["question"],
        "query_id": query_id,
        "tree": dump(tree),
        "search": dump(search),
        "orders": [],
        "new_ids": [],
        "started_at": ctx.dispatcher.clock(),
    }


def _thread_id() -> str | None:
    try:
        tid = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:
        return None
    return str(tid) if tid else None


async def select_node(state: SearchGraphState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Ask the algorithm for the next expansions (an empty list ends the search)."""
    ctx = context_of(runtime)
    tree: SearchTree = load_tree(state)
    search = load_search(state)
    speculator = speculator_for(ctx, state)
    if speculator is not None:
        speculator.commit(tree, search)
    orders = ctx.algorithm.propose(tree, search)
    if speculator is not None:
        speculator.reconcile(tree, orders)
    runtime.stream_writer(
        {
            "event": "select",
            "query_id": state["query_id"],
            "orders": [(o.node_id, o.n) for o in orders],
            "tree_size": len(tree),
        }
    )
    # propose only reads: tree and search are unchanged, so they are not re-written
    return {"orders": [dataclasses.asdict(o) for o in orders]}
