"""The task interface: problems, prompts, answer extraction and grading."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from spex_graph.errors import ConfigError

__all__ = ["DATA_FILES", "PACKAGED_DATA", "Problem", "Task", "data_dir", "data_file", "open_text"]

#: The data files the built-in tasks read, by task name.
DATA_FILES = {
    "math500": "math500.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "game24": "game24.csv",
}


@dataclass(frozen=True, eq=True, unsafe_hash=False)
class Problem:
    """One benchmark problem.

    Attributes:
        id: stable identifier (MATH-500 ``unique_id``, ``gsm8k-<row>``, ``game24-<rank>``).
        task: the task name (``math500``, ``gsm8k``, ``game24``).
        question: the problem text shown to the model (Game of 24: the four numbers).
        gold: the reference answer (Game of 24: the puzzle numbers, e.g. ``"4 4 6 8"``).
        meta: plain JSON-safe extras (subject, level, rank, ...).
    """

    id: str
    task: str
    question: str
    gold: str
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """What the search needs to know about a benchmark.

    Attributes:
        name: the task name ``get_task`` knows it by.
        step_delimiter: the stop string that ends one reasoning step.
        max_depth: a sane default maximum number of steps in a solution.
    """

    name: str
    step_delimiter: str
    max_depth: int

    def load(self, limit: int | None = None, offset: int = 0) -> list[Problem]:
        """Problems ``offset`` .. ``offset + limit`` of the task's evaluation split."""
        ...

    def messages(self, problem: Problem) -> list[tuple[str, str]]:
        """Chat messages ``(role, content)``: a system prompt and the user turn."""
        ...

    def extract_answer(self, text: str) -> str | None:
        """The final answer in a full solution text, or None if it has none."""
        ...

    def is_terminal(self, step_text: str) -> bool:
        """Whether this step states the final answer."""
        ...

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers are the same answer (for grouping votes)."""
        ...

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Whether ``answer`` solves ``problem``."""
        ...


#: The folder inside the package that holds the full data sets (gzip-compressed).
PACKAGED_DATA = Path(__file__).resolve().parent / "data"


def data_dir() -> Path:
    """The folder that holds the benchmark data files.

    ``$SPEX_DATA_DIR`` if set, else the full data sets packaged in ``spex_graph/tasks/data``.

    Raises:
        ConfigError: ``$SPEX_DATA_DIR`` is not a folder.
    """
    env = os.environ.get("SPEX_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(f"SPEX_DATA_DIR={env} is not a folder; point it at the data folder")
        return path
    return PACKAGED_DATA


def data_file(task: str, directory: Path | None = None) -> Path:
    """The data file of ``task`` inside ``directory`` (default :func:`data_dir`).

    The plain file (``math500.jsonl``) if present, else its gzip copy (``math500.jsonl.gz``).

    Raises:
        ConfigError: neither file exists.
    """
    folder = directory if directory is not None else data_dir()
    name = DATA_FILES[task]
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    raise ConfigError(
        f"{folder / name} not found; set SPEX_DATA_DIR to a folder that has {name} (or {name}.gz)"
    )


def open_text(path: Path) -> IO[str]:
    """``path`` opened for reading as UTF-8 text, decompressed if its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped)."""
    import json

    with open_text(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def slice_rows(
    rows: list[Any], limit: int | None, offset: int, what: str = "the task"
) -> list[Any]:
    """``rows[offset : offset + limit]``; asking for rows past the end is an error, never a
    silently shorter list.

    Raises:
        ConfigError: a negative ``offset`` or ``limit``, or a range past the last row.
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise ConfigError(f"offset={offset}, limit={limit}: both must be >= 0")
    total = len(rows)
    if offset > total or (offset == total and total > 0 and limit != 0):
        raise ConfigError(
            f"{what} has {total:,} problems; offset {offset} is past the last one "
            f"(use an offset below {total})"
        )
    if limit is not None and offset + limit > total:
        raise ConfigError(
            f"{what} has {total:,} problems; offset {offset} + limit {limit} asks for "
            f"{offset + limit - total:,} more than exist (use a limit of at most {total - offset})"
        )
    end = None if limit is None else offset + limit
    return rows[offset:end]
