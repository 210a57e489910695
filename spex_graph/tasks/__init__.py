"""Benchmark tasks (MATH-500, GSM8K, Game of 24): loading, prompts, answers, grading."""

from __future__ import annotations

from spex_graph.errors import ConfigError
from spex_graph.tasks.base import Problem, Task, data_dir
from spex_graph.tasks.game24 import (
    Game24Step,
    Game24Task,
    game24_can_reach,
    parse_game24_step,
)
from spex_graph.tasks.gsm8k import GSM8KTask
from spex_graph.tasks.math500 import Math500Task
from spex_graph.tasks.math_equivalence import math_equal, normalize_math_answer

__all__ = [
    "TASK_NAMES",
    "GSM8KTask",
    "Game24Step",
    "Game24Task",
    "Math500Task",
    "Problem",
    "Task",
    "data_dir",
    "game24_can_reach",
    "get_task",
    "math_equal",
    "normalize_math_answer",
    "parse_game24_step",
]

_TASKS: dict[str, type[Math500Task] | type[GSM8KTask] | type[Game24Task]] = {
    "math500": Math500Task,
    "gsm8k": GSM8KTask,
    "game24": Game24Task,
}
#: The names :func:`get_task` accepts.
TASK_NAMES: tuple[str, ...] = tuple(_TASKS)


def get_task(name: str) -> Task:
    """A new task object by name: ``"math500"``, ``"gsm8k"`` or ``"game24"``.

    Raises:
        ConfigError: an unknown name.
    """
    key = str(name).strip().lower()
    if key not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    task: Task = _TASKS[key]()
    return task
