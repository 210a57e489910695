"""Decide whether a freshly generated node ends its path, and extract its answer."""

from __future__ import annotations

from spex_graph.backends.base import Completion
from spex_graph.context import SearchContext
from spex_graph.tree import NodeStatus, SearchNode, SearchTree


def ended_by_engine(completion: Completion) -> bool:
    """The engine stopped on end-of-sequence rather than on the step delimiter."""
    return completion.finish_reason == "stop" and completion.stop_matched is None


def classify_child(
    ctx: SearchContext,
    tree: SearchTree,
    child: SearchNode,
    *,
    until_end: bool,
    completion: Completion,
) -> None:
    """Mark a new child terminal (with its extracted answer) when its path is finished:
    a whole-solution request, a step holding the final answer, the end of the text,
    or the depth cap."""
    step_has_answer = ctx.task.is_terminal(child.text)
    ended = ended_by_engine(completion)
    if until_end or step_has_answer or ended or child.depth >= ctx.max_depth:
        child.status = NodeStatus.TERMINAL
        full_text = ctx.task.step_delimiter.join(tree.steps(child.id))
        child.answer = ctx.task.extract_answer(full_text)
