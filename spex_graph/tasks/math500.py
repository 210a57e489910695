"""MATH-500: competition mathematics with LaTeX final answers in ``\\boxed{}``."""

from __future__ import annotations

from pathlib import Path

from spex_graph.tasks.answers import answer_is, last_boxed
from spex_graph.tasks.base import Problem, data_file, read_jsonl, slice_rows
from spex_graph.tasks.math_equivalence import math_equal

__all__ = ["MATH_SYSTEM_PROMPT", "Math500Task"]

#: System prompt shared by the MATH-style tasks.
MATH_SYSTEM_PROMPT = (
    "You are a careful competition mathematician. Solve the problem step by step. "
    "Write each step as one short paragraph and separate consecutive steps with a blank "
    "line. Do not use blank lines inside a step. When you are done, write the final "
    "answer, fully simplified and without units, as \\boxed{ANSWER} in the last step."
)


class Math500Task:
    """The MATH-500 test split (``math500.jsonl``); answers graded by ``math_equal``."""

    name: str = "math500"
    step_delimiter: str = "\n\n"
    max_depth: int = 12

    def __init__(self, data_dir: Path | None = None) -> None:
        """Read from ``data_dir`` (default: :func:`spex_graph.tasks.base.data_dir`)."""
        self._data_dir = data_dir

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Problems ``offset`` .. ``offset + limit`` of MATH-500, in file order."""
        path = data_file(self.name, self._data_dir)
        rows = read_jsonl(path)
        return [
            Problem(
                id=str(row["unique_id"]),
                task=self.name,
                question=str(row["problem"]),
                gold=str(row["answer"]),
                meta={"subject": row.get("subject"), "level": row.get("level")},
            )
            for row in slice_rows(rows, limit, offset, self.name)
        ]

    def messages(self, problem: Problem) -> list[tuple[str, str]]:
        """System prompt plus the problem, asking for one step per paragraph and a box."""
        user = (
            f"Problem:\n{problem.question}\n\n"
            "Reason step by step, one step per paragraph, with a blank line between steps. "
            "Put the final answer in \\boxed{}."
        )
        return [("system", MATH_SYSTEM_PROMPT), ("user", user)]

    def extract_answer(self, text: str) -> str | None:
        """The last ``\\boxed{}``/``\\fbox{}`` content, else "The final answer is X"."""
        if not text:
            return None
        return last_boxed(text) or answer_is(text)

    def is_terminal(self, step_text: str) -> bool:
        """Whether the step contains a complete ``\\boxed{}`` answer."""
        return last_boxed(step_text) is not None

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two LaTeX answers are the same (symmetric ``math_equal``)."""
        return math_equal(a, b) or math_equal(b, a)

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Whether ``answer`` equals the reference answer under ``math_equal``."""
        return answer is not None and math_equal(answer, problem.gold)
