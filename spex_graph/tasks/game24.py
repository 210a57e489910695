"""Game of 24: combine four numbers with + - * / to make 24 (Tree-of-Thoughts format).

A solution is one operation per line, ``4 + 8 = 12 (left: 4 6 12)``, and a last line
``Answer: (6 - 4) * (4 + 8) = 24``. Arithmetic is exact (fractions, parsed with ``ast``;
nothing is ever ``eval``-ed).
"""

from __future__ import annotations

import ast
import csv
import functools
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from spex_graph.tasks.base import Problem, data_file, open_text, slice_rows

__all__ = [
    "GAME24_SYSTEM_PROMPT",
    "Game24Step",
    "Game24Task",
    "evaluate_game24_expression",
    "game24_can_reach",
    "game24_number",
    "parse_game24_step",
    "puzzle_numbers",
]

#: System prompt of the Game of 24 task.
GAME24_SYSTEM_PROMPT = (
    "You play the Game of 24. Use each of the four input numbers exactly once, with "
    "+ - * / and parentheses, to make 24. Write one operation per line: each line combines "
    "two of the numbers still left, as 'a op b = c (left: ...)' followed by all the numbers "
    "left after it. After the third operation write a final line "
    "'Answer: <one expression that uses the four input numbers> = 24'. "
    "Write nothing else."
)

_EXAMPLE = (
    "Input: 4 4 6 8\n"
    "Steps:\n"
    "4 + 8 = 12 (left: 4 6 12)\n"
    "6 - 4 = 2 (left: 2 12)\n"
    "2 * 12 = 24 (left: 24)\n"
    "Answer: (4 + 8) * (6 - 4) = 24"
)
_NUMBER = r"-?\d+(?:\.\d+)?(?:/\d+)?"
_STEP_RE = re.compile(
    r"^\s*(?:step\s*\d+\s*[:.)]\s*)?(?P<expr>[\d\s.+\-*/()]+?)\s*=\s*(?P<res>" + _NUMBER + r")"
    r"\s*\(\s*left\s*:\s*(?P<left>[^)]*)\)\s*\.?\s*$",
    re.IGNORECASE,
)
_ANSWER_RE = re.compile(r"answer\s*:\s*(.*)", re.IGNORECASE)
_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_MAX_DENOMINATOR = 30


class Game24Step(NamedTuple):
    """One parsed ToT step: ``expression = result (left: numbers)``."""

    expression: str
    result: Fraction
    left: tuple[Fraction, ...]


def game24_number(value: Fraction | int | float | str) -> Fraction:
    """Exact value of a number; shown decimals snap to a close small fraction.

    ``"2.67"`` and ``"2.666"`` become ``8/3`` (the value they round or truncate), ``"1/3"``
    is ``1/3``. Raises ValueError for text that is not a number.
    """
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    text = repr(value) if isinstance(value, float) else str(value).strip()
    exact = Fraction(text)
    decimals = len(text.split(".")[1]) if "." in text and "/" not in text else 0
    if decimals >= 2:
        snapped = exact.limit_denominator(_MAX_DENOMINATOR)
        if abs(snapped - exact) <= Fraction(1, 10**decimals):
            return snapped
    return exact


def puzzle_numbers(puzzle: str | Sequence[Fraction | int | float | str]) -> list[Fraction]:
    """The numbers of a puzzle given as ``"4 4 6 8"`` or as a sequence."""
    items = re.findall(_NUMBER, puzzle) if isinstance(puzzle, str) else list(puzzle)
    return [game24_number(x) for x in items]


def _normalize_expression(text: str) -> str:
    text = text.replace("\u00d7", "*").replace("\u00f7", "/").replace("\u2212", "-")
    text = text.replace("\u2217", "*").replace("\u00b7", "*").replace("\\times", "*")
    text = text.replace("\\div", "/").replace("\\cdot", "*")
    text = re.sub(r"(?<=[\d)\s])[xX](?=[\s\d(])", "*", text)
    return text.strip()


def _eval_node(node: ast.AST, leaves: list[Fraction]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, leaves)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _eval_node(node.left, leaves)
        right = _eval_node(node.right, leaves)
        return _OPS[type(node.op)](left, right)  # type: ignore[no-any-return]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not a number")
        value = game24_number(node.value)
        leaves.append(value)
        return value
    raise ValueError("unsupported expression")


def evaluate_game24_expression(expression: str) -> tuple[Fraction, list[Fraction]] | None:
    """``(value, numbers used)`` of an arithmetic expression with + - * / and parentheses.

    Unary minus, other operators and names are refused; division by zero gives None.
    A trailing ``= 24`` is ignored.
    """
    text = _normalize_expression(expression.split("=")[0])
    if not text or len(text) > 200:
        return None
    try:
        tree = ast.parse(text, mode="eval")
        leaves: list[Fraction] = []
        value = _eval_node(tree, leaves)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, RecursionError):
        return None
    return value, leaves


def _canonical(values: Sequence[Fraction]) -> tuple[Fraction, ...]:
    return tuple(sorted(values))


@functools.lru_cache(maxsize=200_000)
def _reach(values: tuple[Fraction, ...], target: Fraction) -> bool:
    if not values:
        return False
    if len(values) == 1:
        return values[0] == target
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            a, b = values[i], values[j]
            rest = values[:i] + values[i + 1 : j] + values[j + 1 :]
            results = {a + b, a * b, a - b, b - a}
            if b:
                results.add(a / b)
            if a:
                results.add(b / a)
            if any(_reach(_canonical((*rest, c)), target) for c in results):
                return True
    return False


def game24_can_reach(
    numbers: Sequence[Fraction | int | float | str], target: Fraction | int = 24
) -> bool:
    """Whether ``numbers`` can make ``target`` with + - * / (each number used once).

    Exhaustive search over pairs, memoised on the sorted multiset. Rounded decimals
    (``2.67``) snap to the fraction they show (see :func:`game24_number`).
    """
    try:
        values = _canonical(puzzle_numbers(numbers))
    except (ValueError, ZeroDivisionError):
        return False
    if len(values) > 6:
        return False
    return _reach(values, Fraction(target))


def parse_game24_step(line: str) -> Game24Step | None:
    """Parse ``a op b = c (left: x y z)``; None if the line is not in that format."""
    if not line:
        return None
    m = _STEP_RE.match(_normalize_expression(line))
    if not m:
        return None
    expression = re.sub(r"\s+", " ", m.group("expr")).strip()
    if not re.search(r"\d", expression):
        return None
    try:
        result = game24_number(m.group("res"))
        left = tuple(game24_number(x) for x in re.findall(_NUMBER, m.group("left")))
    except (ValueError, ZeroDivisionError):
        return None
    return Game24Step(expression, result, left)


class Game24Task:
    """Game of 24 from ``game24.csv``; by default the ToT test ranks 901-1000."""

    name: str = "game24"
    step_delimiter: str = "\n"
    max_depth: int = 4

    def __init__(
        self, data_dir: Path | None = None, first_rank: int = 901, last_rank: int = 1000
    ) -> None:
        """Read ranks ``first_rank`` .. ``last_rank`` (inclusive) from ``data_dir``."""
        self._data_dir = data_dir
        self.first_rank = first_rank
        self.last_rank = last_rank

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Puzzles ``offset`` .. ``offset + limit`` of the rank range, in rank order."""
        path = data_file(self.name, self._data_dir)
        with open_text(path) as f:
            rows = [
                row
                for row in csv.DictReader(f)
                if self.first_rank <= int(row["Rank"]) <= self.last_rank
            ]
        rows.sort(key=lambda row: int(row["Rank"]))
        return [
            Problem(
                id=f"game24-{row['Rank']}",
                task=self.name,
                question=row["Puzzles"].strip(),
                gold=row["Puzzles"].strip(),
                meta={"rank": int(row["Rank"])},
            )
            for row in slice_rows(
                rows, limit, offset, f"game24 ranks {self.first_rank}-{self.last_rank}"
            )
        ]

    def messages(self, problem: Problem) -> list[tuple[str, str]]:
        """System prompt, a worked example and the puzzle, in the ToT line format."""
        user = f"{_EXAMPLE}\n\nInput: {problem.question}\nSteps:"
        return [("system", GAME24_SYSTEM_PROMPT), ("user", user)]

    def extract_answer(self, text: str) -> str | None:
        """The expression on the last ``Answer:`` line (without ``= 24``), or None."""
        if not text:
            return None
        found = None
        for line in text.splitlines():
            m = _ANSWER_RE.search(line)
            if m:
                found = m.group(1)
        if found is None:
            return None
        expression = found.split("=")[0].strip().rstrip(".").strip()
        return expression or None

    def is_terminal(self, step_text: str) -> bool:
        """Whether the step is (or contains) the ``Answer:`` line."""
        return bool(step_text) and _ANSWER_RE.search(step_text) is not None

    def equivalent(self, a: str, b: str) -> bool:
        """Same expression text, or two valid expressions on the same numbers and value."""
        if re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b):
            return True
        ea, eb = evaluate_game24_expression(a), evaluate_game24_expression(b)
        if ea is None or eb is None:
            return False
        return ea[0] == eb[0] and _canonical(ea[1]) == _canonical(eb[1])

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Whether ``answer`` uses exactly the puzzle's numbers and equals 24 exactly."""
        if not answer:
            return False
        evaluated = evaluate_game24_expression(answer)
        if evaluated is None:
            return False
        value, leaves = evaluated
        try:
            numbers = puzzle_numbers(problem.gold)
        except (ValueError, ZeroDivisionError):
            return False
        return value == 24 and _canonical(leaves) == _canonical(numbers)
