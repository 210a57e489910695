"""Programmatic verifiers: arithmetic in a reasoning step, Game of 24 progress and paths.

Pure functions; arithmetic is parsed with ``ast`` and computed with fractions (nothing is
``eval``-ed). Text that is not clearly an equation is ignored rather than judged.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from spex_graph.tasks.game24 import (
    evaluate_game24_expression,
    game24_can_reach,
    parse_game24_step,
    puzzle_numbers,
)

__all__ = [
    "ArithmeticCheck",
    "check_arithmetic",
    "game24_path_valid",
    "game24_step_score",
]

_REL_TOL = Fraction(1, 10_000)
_MAX_EXPONENT = 64
_NUM = r"(?:\$\s*)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)%?"
# A unit word after a number ("3 kg * 4 = 12 kg"): two or more letters, not a word that
# carries arithmetic or joins clauses.
_UNIT = (
    r"(?:\s+(?!(?:times|of|and|or|is|are|per|plus|minus|to|so|then|by|for|with|each|"
    r"which|that|more|less|than|left|in|on|at|from)\b)[a-zA-Z]{2,}\b"
    r"(?!\s*(?!(?:[xX]|times)\s*[\d($])[a-zA-Z(]))"
)
_OP = r"(?:\*\*|[-+*/^×÷xX]|times\b)"
_TERM = r"(?:\(\s*)*" + _NUM + _UNIT + r"?(?:\s*\))*"
_EXPR = r"(?:-\s*)?" + _TERM + r"(?:\s*" + _OP + r"\s*" + _TERM + r")*"
_CHAIN_RE = re.compile(_EXPR + r"(?:\s*=\s*" + _EXPR + r")+")
_ANNOTATION_RE = re.compile(r"<<([^<>]*)>>")
_EQ_SPLIT_RE = re.compile(r"\s*=\s*")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_HEADER_RE = re.compile(r"(?:steps|input)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class ArithmeticCheck:
    """How many equations a step states (``checked``) and how many are wrong (``wrong``)."""

    checked: int = 0
    wrong: int = 0


def _prepare(text: str) -> str:
    text = text.replace("\\$", "$").replace("\\%", "%")
    text = text.replace("\u2212", "-").replace("\u2013", "-")
    text = re.sub(r"\\(?:times|cdot|ast)(?![a-zA-Z])", "*", text)
    text = re.sub(r"\\div(?![a-zA-Z])", "/", text)
    text = re.sub(r"\\[dt]?frac\{([\d.]+)\}\{([\d.]+)\}", r"(\1/\2)", text)
    text = re.sub(r"\\(?:left|right)(?![a-zA-Z])", "", text)
    text = re.sub(r"\\[()\[\]]", " ", text)  # LaTeX math delimiters \( \) \[ \]
    text = re.sub(r"\*\*", _power_or_bold, text)
    return text.replace("\u00b7", "*").replace("\u2217", "*")


def _power_or_bold(match: re.Match[str]) -> str:
    """``**`` between operands is a power (``2 ** 3``); anywhere else Markdown bold."""
    before = match.string[: match.start()].rstrip()
    after = match.string[match.end() :].lstrip()
    operands = before[-1:].isdigit() or before.endswith(")")
    if operands and (after[:1].isdigit() or after.startswith("(")):
        return "**"
    return " "


def _strip_units(expr: str) -> str:
    return re.sub(r"[a-zA-Z]{2,}", " ", expr)


def _to_python(expr: str, percent_scale: bool) -> str:
    s = _strip_units(re.sub(r"\btimes\b", "*", expr)).replace("$", "").replace(",", "")
    s = s.replace("×", "*").replace("÷", "/").replace("x", "*").replace("X", "*")
    s = s.replace("^", "**")
    return s.replace("%", "/100" if percent_scale else "")


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not a number")
        return Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > _MAX_EXPONENT or abs(left) > 10**12:
                raise ValueError("exponent out of range")
            return left ** int(right)
    raise ValueError("unsupported expression")


def _value(expr: str, percent_scale: bool) -> Fraction | None:
    try:
        return _eval(ast.parse(_to_python(expr, percent_scale).strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, RecursionError):
        return None


def _is_number(expr: str) -> bool:
    return re.fullmatch(r"\s*-?\s*\(*\s*" + _NUM + _UNIT + r"?\s*\)*\s*", expr) is not None


def _leading_number(expr: str) -> str | None:
    """The first number of an expression (``391`` in ``391 - 4``)."""
    found = re.search(_NUM, expr)
    return found.group(0) if found else None


def _decimals(number: str) -> int:
    digits = re.sub(r"[^\d.]", "", number)
    return len(digits.split(".")[1]) if "." in digits else 0


def _matches(value: Fraction, shown: Fraction, decimals: int) -> bool:
    diff = abs(value - shown)
    if diff <= _REL_TOL * max(abs(value), abs(shown)):
        return True
    return decimals > 0 and diff <= Fraction(1, 2 * 10**decimals) + Fraction(1, 10**12)


def _equation_ok(lhs: str, rhs: tuple[str, ...]) -> bool:
    """Whether ``lhs`` (with operators) equals any of the numbers ``rhs`` (lenient on %)."""
    lhs_values = {v for v in (_value(lhs, False), _value(lhs, True)) if v is not None}
    for shown in rhs:
        decimals = _decimals(shown)
        values = {v for v in (_value(shown, False), _value(shown, True)) if v is not None}
        if any(_matches(lv, rv, decimals) for lv in lhs_values for rv in values):
            return True
    return False


def _key(expr: str) -> str:
    text = _strip_units(re.sub(r"\btimes\b", "*", expr))
    return re.sub(r"[\s$,]", "", text).replace("×", "*").replace("x", "*").replace("X", "*")


def _chain_pairs(chain: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(expression, accepted values)`` pairs of a chain ``a = b = c`` worth checking.

    Each side with operators is compared with the plain number right after it; before
    another expression, with that expression's value or its first number (a running
    computation, ``17 * 23 = 391 - 4 = 387``); at the end, with the plain number right
    before it (``18 = 9 * 2``).
    """
    sides = _EQ_SPLIT_RE.split(chain.strip())
    plain = [_is_number(side) for side in sides]
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for k, side in enumerate(sides):
        if plain[k]:
            continue
        if k + 1 < len(sides) and plain[k + 1]:
            pairs.append((side, (sides[k + 1],)))
        elif k + 1 < len(sides):
            value = _value(sides[k + 1], False)
            lead = _leading_number(sides[k + 1])
            accepted = tuple(str(v) for v in (value, lead) if v is not None)
            if accepted:
                pairs.append((side, accepted))
        elif k > 0 and plain[k - 1]:
            pairs.append((side, (sides[k - 1],)))
    return pairs


def _preceded_by_operand(text: str, start: int) -> bool:
    """Whether the match at ``start`` continues a longer expression (algebra, ``3 1/2``)."""
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._"):
        return True
    before = text[:start].rstrip()
    if not before:
        return False
    if before[-1] in "+-*/^×÷()\u2014" or before[-1].isdigit():
        return True
    if text[start] == "-" and (before[-1].isalnum() or before[-1] == ")"):
        return True  # a binary minus: "x - 5 + 3 = 2"
    if re.search(r"[-+*/×÷]\s*(?:[a-zA-Z]+\s+){1,2}$", text[:start]):
        return True  # "25 classmates + his 1 teacher + 1 himself = 27": words in between
    return re.search(r"(?:^|\W)(?:x|X|times|of)$", before[-8:]) is not None


def _continues_algebra(text: str, end: int) -> bool:
    """Whether the match ending at ``end`` runs on (``= (5/2)x``, ``= 3*n``, ``= 3 1/2``)."""
    if end < len(text) and (text[end].isalpha() or text[end] in "_{\\"):
        return True
    after = text[end:].lstrip()
    if after[:1] and (after[0] in "+-*/^×÷(" or after[0].isdigit()):
        return True
    return bool(re.match(r"[a-zA-Z]\s*[=+\-*/^]", after))


def check_arithmetic(step_text: str) -> ArithmeticCheck:
    """Count the equations in a step and how many of them are wrong.

    Finds ``16 - 3 - 4 = 9``, ``9 * 2 = $18``, ``<<16-3-4=9>>``, ``3 x 4 = 12``,
    ``12/4 = 3``, ``1,200 + 300 = 1,500``, ``3 kg * 4 = 12 kg``, ``17 \\times 23 = 391``,
    ``**17 * 23 = 391**``, chains ``a = b = c`` and running computations
    ``17 * 23 = 391 - 4 = 387``, one line at a time. The side with operators
    is computed exactly and compared with the plain number on the other side, to a relative
    1e-4 or to the rounding of the decimals shown. A percent sign may mean /100 or not.
    Equations inside algebra (``2x + 3 = 7``) and statements like ``x = 5`` are ignored.
    """
    if not step_text:
        return ArithmeticCheck(0, 0)
    text = _prepare(step_text)
    seen: set[tuple[str, ...]] = set()
    checked = wrong = 0

    def judge(lhs: str, rhs: tuple[str, ...]) -> None:
        nonlocal checked, wrong
        key = (_key(lhs), *(_key(r) for r in rhs))
        if key in seen:
            return
        seen.add(key)
        if _value(lhs, False) is None and _value(lhs, True) is None:
            return
        checked += 1
        if not _equation_ok(lhs, rhs):
            wrong += 1

    for annotation in _ANNOTATION_RE.findall(text):
        for lhs, rhs in _chain_pairs(annotation):
            judge(lhs, rhs)
    # Line by line: an equation ends at its line ("17 * 23 = 391\n391 - 4 = 387").
    for raw_line in _ANNOTATION_RE.sub(" ", text).splitlines():
        line = _LIST_MARKER_RE.sub("", raw_line)  # "- 17 * 23 = 391" is not minus 17
        for m in _CHAIN_RE.finditer(line):
            if _preceded_by_operand(line, m.start()):
                continue
            if _continues_algebra(line, m.end()):
                continue
            for lhs, rhs in _chain_pairs(m.group(0)):
                judge(lhs, rhs)
    return ArithmeticCheck(checked, wrong)


def game24_step_score(numbers_left: Sequence[Fraction | int | float | str] | str) -> float:
    """1.0 if the numbers left after a step can still make 24, else 0.0."""
    return 1.0 if game24_can_reach(numbers_left) else 0.0


def _take(available: list[Fraction], value: Fraction) -> bool:
    """Remove one occurrence of ``value`` from ``available``; False if absent."""
    for k, candidate in enumerate(available):
        if candidate == value:
            del available[k]
            return True
    return False


def game24_path_valid(
    puzzle: str | Sequence[Fraction | int | float | str],
    steps: list[str],
    *,
    require_reachable: bool = False,
) -> bool:
    """Whether every step of a Game of 24 path is right and uses numbers that were left.

    Each step is ``a op b = c (left: ...)``: its operands must be among the numbers still
    available, ``c`` must be the exact result (rounded decimals such as ``2.67`` for 8/3
    are accepted) and the ``left`` list must be what remains. An ``Answer:`` line must use
    exactly the puzzle's numbers and equal 24. Blank lines and ``Steps:``/``Input:`` header
    lines are skipped; an empty path is valid. With ``require_reachable`` the numbers left
    after the last step must also still be able to make 24.
    """
    try:
        start = puzzle_numbers(puzzle)
    except (ValueError, ZeroDivisionError):
        return False
    available = list(start)
    lines = [line.strip() for step in steps for line in step.splitlines() if line.strip()]
    for line in lines:
        if _HEADER_RE.match(line):
            continue
        answer = re.search(r"answer\s*:\s*(.*)", line, re.IGNORECASE)
        if answer:
            evaluated = evaluate_game24_expression(answer.group(1))
            if evaluated is None:
                return False
            value, leaves = evaluated
            if value != 24 or sorted(leaves) != sorted(start):
                return False
            available = [value]
            continue
        parsed = parse_game24_step(line)
        if parsed is None:
            return False
        evaluated = evaluate_game24_expression(parsed.expression)
        if evaluated is None:
            return False
        value, leaves = evaluated
        if any(not _take(available, leaf) for leaf in leaves):
            return False
        if value != parsed.result:
            return False
        available.append(value)
        if sorted(available) != sorted(parsed.left):
            return False
    return not require_reachable or game24_can_reach(available)
