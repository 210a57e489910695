"""Programmatic verifiers: arithmetic checks and Game of 24 paths."""

from __future__ import annotations

from fractions import Fraction

import pytest

from spex_graph.rewards.verifiers import (
    ArithmeticCheck,
    check_arithmetic,
    game24_path_valid,
    game24_step_score,
)
from spex_graph.tasks.base import data_file, read_jsonl


@pytest.mark.parametrize(
    ("step", "checked", "wrong"),
    [
        ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.", 1, 0),
        ("She makes 9 * 2 = $<<9*2=18>>18 every day.", 1, 0),
        ("She makes 9 * 2 = $20 every day.", 1, 1),
        ("16 - 3 - 4 = 8 eggs are left.", 1, 1),
        ("<<16-3-4=10>>10", 1, 1),
        ("He buys 3 x 4 = 12 boxes.", 1, 0),
        ("He buys 3 x 4 = 13 boxes.", 1, 1),
        ("Each gets 12/4 = 3 cookies.", 1, 0),
        ("In total 1,200 + 300 = 1,500 people came.", 1, 0),
        ("In total 1,200 + 300 = 1,400 people came.", 1, 1),
        ("She pays 3 * $2.50 = $7.50.", 1, 0),
        ("The price is $1,234.50 * 2 = $2,469.", 1, 0),
        ("Each share is 10/3 = 3.33 pounds.", 1, 0),
        ("Each share is 10/3 = 3 pounds.", 1, 1),
        ("So 20% * 50 = 10 students.", 1, 0),
        ("That leaves 100% - 20% = 80%.", 1, 0),
        ("The total is \\$3 \\times 4 = \\$12.", 1, 0),
        ("So 3 + 4 = 7 and 7 * 2 = 15.", 2, 1),
        ("18 = 9 * 2, so 9 is right.", 1, 0),
        ("The area is 2^3 = 8.", 1, 0),
        ("(2 + 3) * 4 = 20", 1, 0),
        ("(2 + 3) * 4 = 21", 1, 1),
        ("Solve 2x + 3 = 7 for x.", 0, 0),
        ("Let x = 5.", 0, 0),
        ("y * 2 + 3 = 7", 0, 0),
        ("x - 5 + 3 = 2", 0, 0),
        ("She has 5 apples.", 0, 0),
        ("He watched 5 - 1 - 1/2 = 3 1/2 hours.", 0, 0),
        ("", 0, 0),
        # what small models write
        ("17 * 23 = 411\n411 - 4 = 407", 2, 1),
        ("17 * 23 = 391\n391 - 4 = 387", 2, 0),
        ("17 * 23 = 391 - 4 = 387", 2, 0),
        ("17 * 23 = 411 - 4 = 407", 2, 1),
        ("(2 + 3) * 4 = 5 * 4 = 20", 2, 0),
        ("3 times 4 = 12 = 2 x 6", 2, 0),
        ("5 times 3 = 16", 1, 1),
        ("17x23=391", 1, 0),
        ("**17 * 23 = 391**", 1, 0),
        ("So the product is **17 * 23 = 411**.", 1, 1),
        ("2 ** 3 = 8", 1, 0),
        ("\\(17 \\times 23 = 391\\)", 1, 0),
        ("$17 \\times 23 = 411$", 1, 1),
        ("- 17 * 23 = 391", 1, 0),
        ("1. 17 * 23 = 391", 1, 0),
        ("3 kg * 4 = 12 kg", 1, 0),
        ("3 kg * 4 = 13 kg", 1, 1),
        ("5 apples x 3 = 15 apples", 1, 0),
        ("So she has 20 apples - 5 = 15 apples left", 1, 0),
        ("It costs $1,200 + $300 = $1,500.", 1, 0),
        ("It costs 1,200 + 300 = 1,600.", 1, 1),
        ("2 apples and bananas = 5", 0, 0),
        ("his 25 classmates + his 1 teacher + 1 himself = 27 people", 0, 0),
    ],
)
def test_check_arithmetic(step: str, checked: int, wrong: int) -> None:
    assert check_arithmetic(step) == ArithmeticCheck(checked, wrong)


def test_check_arithmetic_on_gsm8k_gold_solutions() -> None:
    """Gold solutions are (almost) all right: known slips in 1319 solutions."""
    rows = read_jsonl(data_file("gsm8k"))
    assert len(rows) == 1319
    checked = wrong = 0
    for row in rows:
        for step in row["answer"].split("\n"):
            result = check_arithmetic(step)
            checked += result.checked
            wrong += result.wrong
    assert checked > 4000
    assert wrong <= 3


def test_game24_step_score() -> None:
    assert game24_step_score([4, 6, 12]) == 1.0
    assert game24_step_score([2, 12]) == 1.0
    assert game24_step_score([24]) == 1.0
    assert game24_step_score("1 1 1") == 0.0
    assert game24_step_score([Fraction(1, 3), 8]) == 1.0
    assert game24_step_score(["0.33", 8]) == 1.0
    assert game24_step_score([]) == 0.0


SOLUTION = [
    "4 + 8 = 12 (left: 4 6 12)",
    "6 - 4 = 2 (left: 2 12)",
    "2 * 12 = 24 (left: 24)",
    "Answer: (4 + 8) * (6 - 4) = 24",
]


def test_game24_path_valid() -> None:
    assert game24_path_valid("4 4 6 8", SOLUTION)
    assert game24_path_valid([4, 4, 6, 8], SOLUTION[:2])
    assert game24_path_valid("4 4 6 8", [])
    assert game24_path_valid("4 4 6 8", ["\n".join(SOLUTION)])
    assert game24_path_valid("4 4 6 8", ["Steps:", *SOLUTION])
    three_eights = [
        "8 / 3 = 2.67 (left: 2.67 3 8)",
        "3 - 2.67 = 0.33 (left: 0.33 8)",
        "8 / 0.33 = 24 (left: 24)",
        "Answer: 8 / (3 - 8 / 3) = 24",
    ]
    assert game24_path_valid("3 3 8 8", three_eights)


@pytest.mark.parametrize(
    "steps",
    [
        ["4 + 8 = 13 (left: 4 6 13)"],  # wrong arithmetic
        ["4 + 9 = 13 (left: 4 6 13)"],  # 9 is not available
        ["4 + 8 = 12 (left: 6 12)"],  # left list drops a 4
        ["4 + 8 = 12 (left: 4 6 12)", "12 + 12 = 24 (left: 24)"],  # 12 used twice
        ["4 + 8 = 12"],  # not in the step format
        ["4 + 8 = 12 (left: 4 6 12)", "Answer: (4 + 8) * 2 = 24"],  # answer misses numbers
        ["Answer: 4 + 4 + 6 + 8 = 24"],  # 22, not 24
    ],
)
def test_game24_path_invalid(steps: list[str]) -> None:
    assert not game24_path_valid("4 4 6 8", steps)


def test_game24_path_reachability() -> None:
    dead_end = ["4 * 4 = 16 (left: 6 8 16)", "6 * 8 = 48 (left: 16 48)"]
    assert game24_path_valid("4 4 6 8", dead_end)
    assert not game24_path_valid("4 4 6 8", dead_end, require_reachable=True)
    assert game24_path_valid("4 4 6 8", SOLUTION, require_reachable=True)
    assert game24_path_valid("4 4 6 8", SOLUTION[:1], require_reachable=True)


def test_check_arithmetic_on_gsm8k_gold_text_as_a_model_writes_it() -> None:
    """Whole solutions without the <<calc>> annotations (line breaks, no full stops): nearly
    every equation is found and the one real slip ($32 - $20 = $300) is the only wrong one."""
    import re

    checked = wrong = 0
    for row in read_jsonl(data_file("gsm8k")):
        result = check_arithmetic(re.sub(r"<<[^<>]*>>", "", row["answer"]))
        checked += result.checked
        wrong += result.wrong
    assert checked > 3700
    assert wrong == 1
