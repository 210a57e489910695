"""Task loading, prompts, extraction and grading for MATH-500, GSM8K and Game of 24."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from spex_graph.errors import ConfigError
from spex_graph.tasks import (
    TASK_NAMES,
    Game24Task,
    GSM8KTask,
    Math500Task,
    Problem,
    Task,
    data_dir,
    game24_can_reach,
    get_task,
    parse_game24_step,
)
from spex_graph.tasks.base import DATA_FILES, PACKAGED_DATA, data_file, open_text, read_jsonl

REPO = Path(__file__).resolve().parents[3]


def _plain_copy(folder: Path, count: dict[str, int]) -> Path:
    """Write the first ``count[task]`` rows of each packaged file, uncompressed, into folder."""
    for task, rows in count.items():
        with open_text(data_file(task)) as f:
            lines = f.read().splitlines(keepends=True)
        keep = lines[: rows + (1 if task == "game24" else 0)]  # + the CSV header
        (folder / DATA_FILES[task]).write_text("".join(keep), encoding="utf-8")
    return folder


def test_get_task_names() -> None:
    assert TASK_NAMES == ("math500", "gsm8k", "game24")
    for name in TASK_NAMES:
        task = get_task(name)
        assert task.name == name
        assert isinstance(task, Task)
    assert get_task(" GSM8K ").name == "gsm8k"


def test_get_task_unknown_name() -> None:
    with pytest.raises(ConfigError, match="math500, gsm8k, game24") as info:
        get_task("aime")
    assert "\n" not in str(info.value)


def test_task_settings() -> None:
    assert (Math500Task.step_delimiter, Math500Task.max_depth) == ("\n\n", 12)
    assert (GSM8KTask.step_delimiter, GSM8KTask.max_depth) == ("\n\n", 10)
    assert (Game24Task.step_delimiter, Game24Task.max_depth) == ("\n", 4)


def test_problem_is_frozen() -> None:
    problem = Problem(id="p", task="gsm8k", question="q", gold="1")
    assert problem.meta == {}
    with pytest.raises(AttributeError):
        problem.gold = "2"  # type: ignore[misc]
    assert problem == Problem(id="p", task="gsm8k", question="q", gold="1")


def test_data_dir_is_the_packaged_data_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPEX_DATA_DIR", raising=False)
    assert data_dir() == PACKAGED_DATA
    assert PACKAGED_DATA.is_relative_to(REPO / "spex_graph")
    monkeypatch.setenv("SPEX_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.setenv("SPEX_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="SPEX_DATA_DIR"):
        data_dir()


def test_data_dir_never_walks_up_to_a_shared_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    _plain_copy(tmp_path / "shared" / "data", {"math500": 3})
    (tmp_path / "repo").mkdir()
    monkeypatch.delenv("SPEX_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "repo")
    assert data_dir() == PACKAGED_DATA
    assert len(Math500Task().load()) == 500


@pytest.mark.parametrize(
    ("task", "count"), [(Math500Task(), 500), (GSM8KTask(), 1319), (Game24Task(), 100)]
)
def test_full_data_sets_ship_with_the_package(task: Task, count: int) -> None:
    problems = task.load()
    assert len(problems) == count
    assert all(p.task == task.name and p.question and p.gold for p in problems)
    assert len({p.id for p in problems}) == count
    assert task.load(limit=2, offset=1) == problems[1:3]
    assert len(task.load(limit=100)) == 100
    json.dumps([p.meta for p in problems])  # plain, checkpoint-safe


def test_game24_ranks_beyond_the_tot_range_load() -> None:
    assert len(Game24Task(first_rank=1, last_rank=1362).load()) == 1362


@pytest.mark.parametrize(
    ("limit", "offset", "message"),
    [
        (2000, 0, "gsm8k has 1,319 problems; offset 0 \\+ limit 2000 asks for 681 more"),
        (10, 1315, "use a limit of at most 4"),
        (None, 1319, "offset 1319 is past the last one"),
        (None, 5000, "offset 5000 is past the last one"),
    ],
)
def test_asking_past_the_end_says_so(limit: int | None, offset: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        GSM8KTask().load(limit=limit, offset=offset)
    assert "\n" not in str(info.value)


def test_data_dir_override_reads_plain_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _plain_copy(tmp_path, {"math500": 5, "gsm8k": 10, "game24": 1362})
    monkeypatch.setenv("SPEX_DATA_DIR", str(tmp_path))
    assert data_file("math500") == tmp_path / "math500.jsonl"
    assert [p.id for p in Math500Task().load()] == [
        p.id for p in Math500Task(PACKAGED_DATA).load(5)
    ]
    assert len(GSM8KTask().load()) == 10
    assert len(Game24Task().load()) == 100


def test_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SPEX_DATA_DIR"):
        Math500Task(tmp_path).load()


def test_negative_offset_rejected() -> None:
    with pytest.raises(ConfigError):
        GSM8KTask().load(offset=-1)


def test_math500_problem_and_messages() -> None:
    task = Math500Task()
    problem = task.load(limit=1)[0]
    assert problem.id == "test/precalculus/807.json"
    assert problem.gold == "\\left( 3, \\frac{\\pi}{2} \\right)"
    messages = task.messages(problem)
    assert [role for role, _ in messages] == ["system", "user"]
    assert "\\boxed" in messages[0][1] and "blank line" in messages[0][1]
    assert problem.question in messages[1][1]
    assert task.is_correct(problem, "(3, \\pi/2)")
    assert not task.is_correct(problem, "(3, \\pi)")
    assert not task.is_correct(problem, None)


def test_math500_extract_and_terminal() -> None:
    task = Math500Task()
    text = "Step one.\n\nSo the result is $\\boxed{\\frac{1}{2}}$."
    assert task.extract_answer(text) == "\\frac{1}{2}"
    assert task.extract_answer("The final answer is $7$.") == "7"
    assert task.extract_answer("no answer yet") is None
    assert task.is_terminal("Thus $\\boxed{3}$.")
    assert not task.is_terminal("We compute 3 + 4 = 7.")
    assert task.equivalent("0.5", "\\frac{1}{2}")
    assert not task.equivalent("0.5", "\\frac{1}{3}")


def _gsm8k_rows() -> list[dict[str, str]]:
    return read_jsonl(data_file("gsm8k"))


def test_gsm8k_all_golds_extract_and_grade() -> None:
    task = GSM8KTask()
    problems = task.load()
    rows = _gsm8k_rows()
    assert len(problems) == len(rows) == 1319
    for problem, row in zip(problems, rows, strict=True):
        extracted = task.extract_answer(row["answer"])
        assert extracted is not None
        assert Fraction(extracted) == Fraction(problem.gold)
        assert task.is_correct(problem, extracted)
        assert task.is_correct(problem, problem.gold)
        assert not task.is_correct(problem, str(Fraction(problem.gold) + 1))


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So she makes $18.\n\nThe answer is \\boxed{18}.", "18"),
        ("She makes 9 * 2 = $18.\n#### 18", "18"),
        ("Total: \\boxed{\\$1,234.00}", "1234"),
        ("The final answer is 42.", "42"),
        ("She pays 3 * 4 = 12 dollars, then 12 + 5 = 17", "17"),
        ("\\boxed{18 \\text{ dollars}}", "18"),
        ("no numbers", None),
    ],
)
def test_gsm8k_extract(text: str, answer: str | None) -> None:
    assert GSM8KTask().extract_answer(text) == answer


def test_gsm8k_grading_and_terminal() -> None:
    task = GSM8KTask()
    problem = Problem(id="g", task="gsm8k", question="q", gold="1450000")
    assert task.is_correct(problem, "1,450,000")
    assert task.is_correct(problem, "1450000.00")
    assert not task.is_correct(problem, "145000")
    assert not task.is_correct(problem, None)
    assert task.equivalent("0.5", "1/2")
    assert task.is_terminal("So the total is \\boxed{5}.")
    assert task.is_terminal("#### 5")
    assert task.is_terminal("So the final answer is 5.")
    assert not task.is_terminal("She has 5 apples.")
    messages = task.messages(problem)
    assert [role for role, _ in messages] == ["system", "user"]
    assert "\\boxed" in messages[1][1]


def test_game24_loads_tot_ranks() -> None:
    problems = Game24Task().load()
    assert len(problems) == 100
    assert problems[0].id == "game24-901" and problems[0].gold == "4 5 6 10"
    assert problems[-1].meta["rank"] == 1000
    assert all(game24_can_reach(p.gold.split()) for p in problems)


@pytest.mark.parametrize(
    ("numbers", "reachable"),
    [
        ([4, 4, 6, 8], True),
        ([1, 1, 4, 6], True),
        ([3, 3, 8, 8], True),  # 8 / (3 - 8/3)
        ([1, 5, 5, 5], True),  # (5 - 1/5) * 5
        ([1, 1, 1, 1], False),
        ([1, 1, 1, 2], False),
        ([2, 12], True),
        ([6, 12], False),
        ([24], True),
        ([23], False),
        ([], False),
        (["2.67", 3, 8], True),  # 8/3 shown rounded
    ],
)
def test_game24_can_reach(numbers: list[int], reachable: bool) -> None:
    assert game24_can_reach(numbers) is reachable


def test_game24_is_correct() -> None:
    task = Game24Task()
    problem = Problem(id="g", task="game24", question="4 4 6 8", gold="4 4 6 8")
    assert task.is_correct(problem, "(4 + 8) * (6 - 4)")
    assert task.is_correct(problem, "(4 + 8) * (6 - 4) = 24")
    assert task.is_correct(problem, "(4 × 8) - (6 + 4) + 2") is False  # 2 is not a number
    assert not task.is_correct(problem, "(4 + 8) * (6 - 3)")  # wrong numbers
    assert not task.is_correct(problem, "4 + 4 + 6 + 8")  # 22
    assert not task.is_correct(problem, "(4 + 8) * 2")  # too few numbers
    assert not task.is_correct(problem, "-4 + 4 + 6 * 4")  # unary minus
    assert not task.is_correct(problem, "__import__('os')")
    assert not task.is_correct(problem, "4 / (4 - 4) + 6 + 8")
    assert not task.is_correct(problem, None)
    three_eights = Problem(id="h", task="game24", question="3 3 8 8", gold="3 3 8 8")
    assert task.is_correct(three_eights, "8 / (3 - 8 / 3)")


def test_game24_extract_terminal_equivalent() -> None:
    task = Game24Task()
    text = "4 + 8 = 12 (left: 4 6 12)\n6 - 4 = 2 (left: 2 12)\nAnswer: (4 + 8) * (6 - 4) = 24"
    assert task.extract_answer(text) == "(4 + 8) * (6 - 4)"
    assert task.extract_answer("4 + 8 = 12 (left: 4 6 12)") is None
    assert task.is_terminal("Answer: (4 + 8) * (6 - 4) = 24")
    assert not task.is_terminal("4 + 8 = 12 (left: 4 6 12)")
    assert task.equivalent("(4 + 8) * (6 - 4)", "(6 - 4) * (4 + 8)")
    assert not task.equivalent("(4 + 8) * (6 - 4)", "4 * 6 * (8 - 4) / 4")
    messages = task.messages(Problem(id="g", task="game24", question="1 2 3 4", gold="1 2 3 4"))
    assert messages[1][1].endswith("Input: 1 2 3 4\nSteps:")
    assert "(left: 4 6 12)" in messages[1][1]
    assert "Answer: (4 + 8) * (6 - 4) = 24" in messages[1][1]


def test_parse_game24_step() -> None:
    step = parse_game24_step("4 + 8 = 12 (left: 4 6 12)")
    assert step is not None
    assert step.expression == "4 + 8"
    assert step.result == 12
    assert step.left == (4, 6, 12)
    expression, result, left = parse_game24_step("8 / 3 = 2.67 (left: 2.67 3 8)") or ("", 0, ())
    assert expression == "8 / 3"
    assert result == Fraction(8, 3) and left == (Fraction(8, 3), 3, 8)
    assert parse_game24_step("Step 2: 10 × 2 = 20 (left: 4 20)") is not None
    assert parse_game24_step("Answer: (4 + 8) * (6 - 4) = 24") is None
    assert parse_game24_step("4 + 8 = 12") is None
    assert parse_game24_step("") is None
