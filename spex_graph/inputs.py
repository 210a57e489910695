"""Checks on what a caller asks the search to solve: one-line errors naming the fix."""

from __future__ import annotations

from spex_graph.errors import ConfigError

MAX_QUESTION_CHARS = 500_000
"""Longest question accepted (about 125k tokens: more than any supported model's context)."""


def check_question(question: object) -> str:
    """Return `question` if it is searchable text, else raise a one-line ConfigError.

    Rejects non-strings, empty or whitespace-only text, text over
    MAX_QUESTION_CHARS and text that is not valid Unicode (a lone surrogate,
    e.g. from bytes decoded with errors="surrogateescape"), which no backend
    can send. Unicode, right-to-left text, emoji and template braces are fine.
    """
    if not isinstance(question, str):
        raise ConfigError(
            f"the question must be a string, not {type(question).__name__}; "
            "pass the problem text as a str"
        )
    if not question.strip():
        raise ConfigError("the question is empty; pass the problem text to solve")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(
            f"the question is {len(question):,} characters; the limit is "
            f"{MAX_QUESTION_CHARS:,} (more than any model's context): shorten it"
        )
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"the question is not valid Unicode (lone surrogate {question[exc.start]!r} at "
            f"character {exc.start}); decode its source with errors='replace'"
        ) from None
    return question
