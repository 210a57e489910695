"""Helpers that pull a final answer out of a model's solution text.

All functions are pure, never raise on odd input, and return ``None`` when there is
no answer of the kind they look for.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

__all__ = [
    "answer_is",
    "braced_group",
    "clean_number",
    "hash_answer",
    "last_boxed",
    "last_number",
    "number_value",
]

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_IS_RE = re.compile(r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*", re.IGNORECASE)
_BARE_BOX_RE = re.compile(r"[^\s$]+")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")


def braced_group(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the index after it.

    Escaped braces (``\\{``, ``\\}``) do not count.
    """
    depth = 0
    k = start
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : k], k + 1
        k += 1
    return None


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each ``{`` to the index of its ``}`` in one pass (escaped braces skipped).

    Matches `braced_group` for every unescaped ``{``, in linear time: a text with
    thousands of unclosed boxes would otherwise take quadratic time to search.
    """
    pairs: dict[int, int] = {}
    opened: list[int] = []
    k = 0
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "{":
            opened.append(k)
        elif ch == "}" and opened:
            pairs[opened.pop()] = k
        k += 1
    return pairs


def _box_at(text: str, pos: int, command: str, pairs: dict[int, int]) -> str | None:
    """Content of the box command found at ``pos``, or None if it is incomplete."""
    k = pos + len(command)
    if k < len(text) and (text[k].isalpha()):
        return None  # a longer command name, e.g. \boxedsomething
    while k < len(text) and text[k] == " ":
        k += 1
    if k >= len(text):
        return None
    if text[k] == "{":
        end = pairs.get(k)
        return None if end is None else text[k + 1 : end].strip()
    match = _BARE_BOX_RE.match(text, k)
    return match.group(0).strip() if match else None


def last_boxed(text: str | None) -> str | None:
    """Content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces kept).

    ``\\boxed 5`` (no braces) yields ``5``. Returns None when there is no complete box.
    """
    if not text:
        return None
    positions: list[tuple[int, str]] = []
    for command in _BOX_COMMANDS:
        positions.extend((m.start(), command) for m in re.finditer(re.escape(command), text))
    pairs = _brace_pairs(text) if positions else {}
    for pos, command in sorted(positions, reverse=True):
        content = _box_at(text, pos, command, pairs)
        if content is not None:
            return content
    return None


def hash_answer(text: str | None) -> str | None:
    """Text after the last ``####`` marker (GSM8K style), up to the end of that line."""
    if not text or "####" not in text:
        return None
    rest = text[text.rfind("####") + 4 :].strip()
    rest = rest.splitlines()[0].strip() if rest else ""
    return rest or None


def answer_is(text: str | None) -> str | None:
    """The answer stated as "The (final) answer is X" (the last such statement), or None."""
    if not text:
        return None
    matches = list(_ANSWER_IS_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].strip()
    if not rest:
        return None
    tail = rest.splitlines()[0].strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    if tail.startswith("$") and tail.count("$") >= 2:
        tail = tail[1 : tail.index("$", 1)]
    else:
        tail = re.split(r"\.(?:\s|$)", tail)[0]
    tail = tail.strip().strip("$").strip().rstrip(".").strip()
    return tail or None


def last_number(text: str | None) -> str | None:
    """The last number written in ``text`` (thousands separators removed), or None."""
    if not text:
        return None
    matches = _NUMBER_RE.findall(text)
    if not matches:
        return None
    return _canonical(matches[-1].replace(",", ""))


def _canonical(number: str) -> str | None:
    """Canonical decimal string of a plain number (``18.00`` -> ``18``), or None."""
    try:
        value = Decimal(number)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def number_value(text: str | None) -> Fraction | None:
    """Exact value of a cleaned number (``18``, ``-2.5``, ``3/4``), or None."""
    if not text:
        return None
    s = text.strip()
    try:
        if re.fullmatch(r"-?\d+/\d+", s):
            num, den = s.split("/")
            return Fraction(int(num), int(den)) if int(den) else None
        if re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", s):
            return Fraction(Decimal(s))
    except (ValueError, ZeroDivisionError, InvalidOperation):
        return None
    return None


def clean_number(text: str | None) -> str | None:
    """A plain-number answer stripped of ``$``, ``\\$``, ``,``, ``%``, units and LaTeX.

    ``"\\$1,234.50"`` -> ``"1234.5"``; ``"\\frac{3}{4}"`` -> ``"3/4"``. Returns None when the
    text is not a single number.
    """
    if not text:
        return None
    s = text.strip()
    s = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{([^{}]*)\}", r" \1 ", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("{,}", ",").replace("\u2212", "-")
    s = re.sub(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", s)
    s = re.sub(r"^[A-Za-z ]*[=:]", "", s)  # "x = 5", "Total: 5"
    s = re.sub(r"(?<=\d)\s*[A-Za-z][A-Za-z .]*$", "", s)  # trailing units
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if s.startswith("+"):
        s = s[1:]
    frac = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if frac:
        value = number_value(s)
        if value is None:
            return None
        if value.denominator == 1:
            return str(value.numerator)
        return f"{value.numerator}/{value.denominator}"
    if re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", s):
        return _canonical(s)
    return None
