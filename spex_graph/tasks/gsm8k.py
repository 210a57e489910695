"""GSM8K: grade-school word problems with a numeric final answer."""

from __future__ import annotations

import re
from pathlib import Path

from spex_graph.tasks.answers import (
    answer_is,
    clean_number,
    hash_answer,
    last_boxed,
    last_number,
    number_value,
)
from spex_graph.tasks.base import Problem, data_file, read_jsonl, slice_rows
from spex_graph.tasks.math_equivalence import math_equal

__all__ = ["GSM8K_SYSTEM_PROMPT", "GSM8KTask", "gsm8k_gold"]

#: System prompt of the GSM8K task.
GSM8K_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the word problem step by step. Write each step "
    "as one short paragraph with its calculation, and separate consecutive steps with a "
    "blank line. Do not use blank lines inside a step. End the last step with the final "
    "answer as a plain number, written as \\boxed{N} (or as a final line #### N)."
)


def gsm8k_gold(answer_field: str) -> str:
    """The reference number of a GSM8K ``answer`` field (after ``####``, commas removed)."""
    raw = hash_answer(answer_field) or ""
    return clean_number(raw) or raw.replace(",", "").strip()


def _answer_number(raw: str) -> str:
    """The number in an answer fragment (``\\$18.00`` -> ``18``), else the stripped text."""
    return clean_number(raw) or last_number(raw) or raw.strip()


class GSM8KTask:
    """The GSM8K test set (``gsm8k_test.jsonl``); answers compared as exact numbers."""

    name: str = "gsm8k"
    step_delimiter: str = "\n\n"
    max_depth: int = 10

    def __init__(self, data_dir: Path | None = None) -> None:
        """Read from ``data_dir`` (default: :func:`spex_graph.tasks.base.data_dir`)."""
        self._data_dir = data_dir

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Problems ``offset`` .. ``offset + limit`` of the GSM8K test set, in file order."""
        path = data_file(self.name, self._data_dir)
        rows = read_jsonl(path)
        indexed = slice_rows(list(enumerate(rows)), limit, offset, self.name)
        return [
            Problem(
                id=f"gsm8k-{index}",
                task=self.name,
                question=str(row["question"]),
                gold=gsm8k_gold(str(row["answer"])),
                meta={"row": index},
            )
            for index, row in indexed
        ]

    def messages(self, problem: Problem) -> list[tuple[str, str]]:
        """System prompt plus the question, asking for one step per paragraph."""
        user = (
            f"Question:\n{problem.question}\n\n"
            "Reason step by step, one step per paragraph, with a blank line between steps. "
            "Give the final answer as \\boxed{N}."
        )
        return [("system", GSM8K_SYSTEM_PROMPT), ("user", user)]

    def extract_answer(self, text: str) -> str | None:
        """The final number: last ``\\boxed{}``, else ``#### N``, else "the answer is N",
        else the last number in the text. None if the text has no number at all."""
        if not text:
            return None
        for finder in (last_boxed, hash_answer, answer_is):
            raw = finder(text)
            if raw:
                return _answer_number(raw)
        return last_number(text)

    def is_terminal(self, step_text: str) -> bool:
        """Whether the step states the final answer (a box, ``####`` or "answer is")."""
        if not step_text:
            return False
        if last_boxed(step_text) is not None or hash_answer(step_text) is not None:
            return True
        return bool(re.search(r"(?:final answer|the answer) is", step_text, re.IGNORECASE))

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two answers are the same number (exact), else ``math_equal``."""
        va, vb = number_value(_answer_number(a)), number_value(_answer_number(b))
        if va is not None and vb is not None:
            return va == vb
        return math_equal(a, b) or math_equal(b, a)

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Whether ``answer`` is the reference number."""
        return answer is not None and self.equivalent(answer, problem.gold)
