"""Answer extraction helpers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from spex_graph.tasks.answers import (
    answer_is,
    braced_group,
    clean_number,
    hash_answer,
    last_boxed,
    last_number,
    number_value,
)


@pytest.mark.parametrize(
    ("text", "boxed"),
    [
        ("so $\\boxed{5}$.", "5"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{\\{1\\pm\\sqrt{5},-2\\}}", "\\{1\\pm\\sqrt{5},-2\\}"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5$", "5"),
        ("\\boxed{ 12 } and then \\boxed{unclosed", "12"),
        ("\\boxed{unclosed", None),
        ("no box here", None),
        ("", None),
    ],
)
def test_last_boxed(text: str, boxed: str | None) -> None:
    assert last_boxed(text) == boxed


def test_braced_group_skips_escaped_braces() -> None:
    assert braced_group("{a\\}b}c", 0) == ("a\\}b", 6)
    assert braced_group("{open", 0) is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("He makes 9 * 2 = 18.\n#### 18", "18"),
        ("#### 1,450,000", "1,450,000"),
        ("#### 5\nextra", "5"),
        ("####", None),
        ("no marker", None),
    ],
)
def test_hash_answer(text: str, answer: str | None) -> None:
    assert hash_answer(text) == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So the answer is 42.", "42"),
        ("The final answer is $\\frac{1}{2}$. I hope", "\\frac{1}{2}"),
        ("The final answer is: 3.5", "3.5"),
        ("Thus the answer is \\boxed{7}", "7"),
        ("the answer is 1 and later the answer is 2", "2"),
        ("nothing", None),
    ],
)
def test_answer_is(text: str, answer: str | None) -> None:
    assert answer_is(text) == answer


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("She has 3 apples and 1,200 pears.", "1200"),
        ("It costs $18.00 in total", "18"),
        ("from -5 to -2.50", "-2.5"),
        ("values 1,2,3", "3"),
        ("none", None),
    ],
)
def test_last_number(text: str, number: str | None) -> None:
    assert last_number(text) == number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("18", "18"),
        ("\\$1,234.50", "1234.5"),
        ("$18", "18"),
        ("50\\%", "50"),
        ("18 dollars", "18"),
        ("\\text{18 dollars}", "18"),
        ("x = 5", "5"),
        ("\\frac{3}{4}", "3/4"),
        ("6/3", "2"),
        ("-7.", "-7"),
        ("1,450,000", "1450000"),
        ("0.50", "0.5"),
        ("three", None),
        ("1, 2", None),
        ("", None),
    ],
)
def test_clean_number(text: str, number: str | None) -> None:
    assert clean_number(text) == number


def test_number_value() -> None:
    assert number_value("3/4") == Fraction(3, 4)
    assert number_value("-2.5") == Fraction(-5, 2)
    assert number_value("1/0") is None
    assert number_value("x") is None
    assert number_value(None) is None
