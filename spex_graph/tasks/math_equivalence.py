"""Normalise LaTeX final answers (MATH style) and decide whether two are the same answer.

``normalize_math_answer`` gives a canonical string (boxes, ``$``, spacing, ``\\left``,
units, degrees, ``\\%``, ``\\$``, thousands separators, ``\\dfrac``/``\\frac12``/``\\sqrt2``
shorthands, mixed numbers and trailing periods handled). ``math_equal`` then compares
structure (tuples and intervals element-wise with their brackets, unordered lists and
sets, unions, matrices, equations, multiple-choice letters, base-``b`` numbers, words) and
scalars symbolically through :mod:`spex_graph.tasks.latex_to_sympy`, under a time limit.
Neither function ever raises.
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from types import FrameType
from typing import Any

from spex_graph.tasks.answers import braced_group, last_boxed
from spex_graph.tasks.latex_to_sympy import proportional, sympy_equal, to_sympy

__all__ = ["math_equal", "normalize_math_answer"]

_TIME_LIMIT_S = 3.0
_UNICODE = (
    ("\u2212", "-"),
    ("\u2013", "-"),
    ("\u00d7", "\\times "),
    ("\u22c5", "\\cdot "),
    ("\u00b7", "\\cdot "),
    ("\u00f7", "\\div "),
    ("\u221a", "\\sqrt"),
    ("\u03c0", "\\pi "),
    ("\u221e", "\\infty "),
    ("\u00b0", ""),
    ("\u00a0", " "),
)
_TEXT_COMMANDS = "text|textrm|textbf|textit|textnormal|textsf|texttt|textup|mbox|hbox|mathrm|mathtt"
_UNWRAP_COMMANDS = ("mathbf", "mathit", "boldsymbol", "bm", "mathsf", "operatorname")
_UNITS = (
    "units?|cm|centimet(?:er|re)s?|mm|millimet(?:er|re)s?|km|kilomet(?:er|re)s?|met(?:er|re)s?"
    "|inch(?:es)?|feet|foot|ft|yards?|yd|miles?|mph|degrees?|deg|radians?|cents?|dollars?"
    "|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|pounds?|lbs?"
    "|ounces?|oz|gallons?|lit(?:er|re)s?|ml|kg|grams?|percent|people|students"
)
_BARE_UNIT_RE = re.compile(
    r"(?<=[\d}])\s*(?:(?:square|sq\.?|cubic)\s*)?(?:" + _UNITS + r")\b\.?(?:\^\{?[23]\}?)?\s*$"
)
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_MATRIX_RE = re.compile(
    r"\\begin\{([pbBvV]?matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S
)


class _Timeout(Exception):
    """Raised by the alarm when a comparison runs past its time limit."""


# ----------------------------------------------------------------------------------------
# normalisation


def _replace_groups(s: str, command: str, repl: Callable[[str], str]) -> str:
    """Replace every ``\\command{...}`` by ``repl(content)`` (left to right)."""
    pattern = re.compile(r"\\" + command + r"(?![a-zA-Z])\s*(?=\{)")
    out: list[str] = []
    pos = 0
    while True:
        m = pattern.search(s, pos)
        if not m:
            break
        group = braced_group(s, m.end())
        if group is None:
            break
        content, end = group
        out.append(s[pos : m.start()])
        out.append(repl(content))
        pos = end
    out.append(s[pos:])
    return "".join(out)


def _strip_text(s: str) -> str:
    """Drop unit-like ``\\text{...}`` after a value, unwrap the other ``\\text{...}``."""
    s = re.sub(r"\\(?:" + _TEXT_COMMANDS + r")(?![a-zA-Z])", r"\\text", s)
    s = re.sub(r"\\text\{\s*(?:or|and)\s*\}", ",", s)
    # unit words after a value: "5\text{ cm}^2", "\frac{270}7\text{ degrees}"
    s = re.sub(
        r"(?<=\S)\s*\\text\{\s*(?:(?:square|sq\.?|cubic)\s*)?[A-Za-z][A-Za-z\s.]*\}"
        r"(?:\^\{?[23]\}?)?(?=\s*$)",
        "",
        s,
    )
    for _ in range(5):
        if "\\text" not in s:
            break
        s = _replace_groups(s, "text", lambda content: content)
    for name in _UNWRAP_COMMANDS:
        if "\\" + name in s:
            s = _replace_groups(s, name, lambda content: content)
    return s


def _brace_args(s: str) -> str:
    """Brace ``\\frac``/``\\binom``/``\\sqrt`` arguments: ``\\frac12`` -> ``\\frac{1}{2}``."""
    out: list[str] = []
    i = 0
    while i < len(s):
        m = re.match(r"\\(frac|binom|sqrt)(?![a-zA-Z])", s[i:])
        if not m:
            step = 2 if s[i] == "\\" else 1
            out.append(s[i : i + step])
            i += step
            continue
        name = m.group(1)
        i += m.end()
        out.append("\\" + name)
        while i < len(s) and s[i] == " ":
            i += 1
        if name == "sqrt" and i < len(s) and s[i] == "[":
            end = s.find("]", i)
            if end < 0:
                out.append(s[i:])
                break
            out.append(s[i : end + 1])
            i = end + 1
        for _ in range(1 if name == "sqrt" else 2):
            while i < len(s) and s[i] == " ":
                i += 1
            if i >= len(s):
                break
            if s[i] == "{":
                group = braced_group(s, i)
                if group is None:
                    out.append(s[i:])
                    i = len(s)
                    break
                out.append("{" + _brace_args(group[0]) + "}")
                i = group[1]
            elif s[i] == "\\":
                cm = re.match(r"\\(?:[a-zA-Z]+|.)", s[i:])
                token = cm.group(0) if cm else s[i]
                out.append("{" + token + "}")
                i += len(token)
            else:
                out.append("{" + s[i] + "}")
                i += 1
    return "".join(out)


def _squash_spaces(s: str) -> str:
    """Remove whitespace, keeping one space where a command name meets a letter."""
    return re.sub(
        r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])|\s+",
        lambda m: m.group(1) + " " if m.group(1) else "",
        s,
    )


def _mixed_number(m: re.Match[str]) -> str:
    whole, num, den = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return f"\\frac{{{whole * den + num}}}{{{den}}}" if den else m.group(0)


def _canonical_decimal(s: str) -> str:
    if not re.fullmatch(r"-?(?:\d+\.?\d*|\.\d+)", s):
        return s
    try:
        text = format(Decimal(s).normalize(), "f")
    except (InvalidOperation, ValueError):
        return s
    return "0" if text == "-0" else text


def _strip_outer_braces(s: str) -> str:
    while s.startswith("{") and s.endswith("}"):
        group = braced_group(s, 0)
        if group is None or group[1] != len(s):
            break
        s = group[0]
    return s


@functools.lru_cache(maxsize=16384)
def _normalize(s: str) -> str:
    s = s.strip()
    if "\\boxed" in s or "\\fbox" in s:
        boxed = last_boxed(s)
        if boxed is not None:
            s = boxed
    for old, new in _UNICODE:
        s = s.replace(old, new)
    s = s.replace("\\$", " ").replace("$", " ").strip().rstrip(".")
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(
        r"\\\\|\\(?:[,;:! ]|quad|qquad|left|right|[bB]igg?[lr]?|displaystyle|textstyle"
        r"|limits)(?![a-zA-Z])",
        lambda m: m.group(0) if m.group(0) == "\\\\" else " ",
        s,
    )
    s = re.sub(r"\\(?:[dtc])frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\(?:[dt])binom(?![a-zA-Z])", r"\\binom", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = re.sub(r"\\(?:circ|degree)(?![a-zA-Z])", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _strip_text(s)
    s = re.sub(r"\s+(?:or|and)\s+", ",", s)
    for _ in range(3):
        s = _BARE_UNIT_RE.sub("", s)
    s = re.sub(r"^\s*[a-zA-Z]\s*\\in(?![a-zA-Z])\s*", "", s)
    s = re.sub(r"\\varnothing(?![a-zA-Z])", r"\\emptyset", s)
    s = _brace_args(s)
    s = _squash_spaces(s.strip())
    s = s.replace("{,}", ",")
    s = s.rstrip(".")
    s = _strip_outer_braces(s)
    if s.startswith("+"):
        s = s[1:]
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d*)?", s):
        s = s.replace(",", "")
    s = re.sub(r"(?<![\w.}^)\\])(\d+)\\frac\{(\d+)\}\{(\d+)\}", _mixed_number, s)
    return _canonical_decimal(s)


def normalize_math_answer(s: str | None) -> str:
    """Canonical string form of a LaTeX final answer (``\\boxed{\\dfrac12}`` -> ``\\frac{1}{2}``).

    Strips boxes, ``$``, spacing commands, ``\\left``/``\\right``, units (``\\text{ cm}``,
    ``^\\circ``, degrees, ``\\$``, ``\\%``), thousands separators and trailing periods, and
    braces ``\\frac``/``\\sqrt`` shorthand. Never raises; None gives ``""``.
    """
    if s is None:
        return ""
    try:
        return _normalize(str(s))
    except Exception:
        return re.sub(r"\s+", "", str(s))


# ----------------------------------------------------------------------------------------
# structure


def _scan(s: str) -> Iterator[tuple[int, int]]:
    """Yield ``(index, depth before it)`` for each token start; escapes count as brackets."""
    depth = 0
    i = 0
    while i < len(s):
        ch = s[i]
        yield i, depth
        if ch == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt in ("{", "}") and nxt:
                depth += 1 if nxt == "{" else -1
            i += 2 if nxt else 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        i += 1


def _split_top(s: str, sep: str) -> list[str]:
    """Split ``s`` at occurrences of ``sep`` outside any bracket."""
    parts: list[str] = []
    start = 0
    skip_to = 0
    for i, depth in _scan(s):
        if i >= skip_to and depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = skip_to = i + len(sep)
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _outer_brackets(s: str) -> tuple[str, str, str] | None:
    """``(open, inner, close)`` when one bracket pair encloses all of ``s``."""
    if s.startswith("\\{") and s.endswith("\\}"):
        open_, close = "\\{", "\\}"
    elif len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        open_, close = s[0], s[-1]
    else:
        return None
    tokens = list(_scan(s))
    # the first token after the opener must be the only place where depth returns to zero
    closes_at = [i for i, depth in tokens[1:] if depth == 0]
    if closes_at:
        return None
    if len(s) < len(open_) + len(close):
        return None
    return open_, s[len(open_) : len(s) - len(close)], close


def _structure(s: str) -> tuple[Any, ...]:
    """Parse a normalised answer into ``(kind, ...)``: matrix, union, set, seq, list, scalar."""
    m = _MATRIX_RE.fullmatch(s)
    if m:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        return ("matrix", tuple(tuple(c.strip() for c in r.split("&")) for r in rows))
    parts = _split_top(s, "\\cup")
    if len(parts) > 1:
        return ("union", tuple(_structure(p) for p in parts))
    brackets = _outer_brackets(s)
    if brackets:
        open_, inner, close = brackets
        items = [x for x in _split_top(inner, ",") if x]
        if open_ == "\\{":
            return ("set", tuple(items))
        if len(items) >= 2:
            return ("seq", open_ + close, tuple(items))
        if open_ + close in ("()", "[]") and items:
            return _structure(items[0]) if open_ == "(" else ("seq", "[]", tuple(items))
    items = [x for x in _split_top(s, ",") if x]
    if len(items) >= 2:
        return ("list", tuple(items))
    return ("scalar", s)


def _expand_pm(s: str) -> list[str]:
    """``1\\pm\\sqrt{2}`` -> ``["1+\\sqrt{2}", "1-\\sqrt{2}"]`` (every ``\\pm``/``\\mp``)."""
    m = re.search(r"\\(pm|mp)(?![a-zA-Z])", s)
    if not m:
        return [s]
    signs = ("+", "-") if m.group(1) == "pm" else ("-", "+")
    head, tail = s[: m.start()], s[m.end() :]
    return [x for sign in signs for x in _expand_pm(head + sign + tail)]


def _multiset_equal(xs: Sequence[Any], ys: Sequence[Any], eq: Callable[[Any, Any], bool]) -> bool:
    if len(xs) != len(ys):
        return False
    used = [False] * len(ys)
    for x in xs:
        for k, y in enumerate(ys):
            if not used[k] and eq(x, y):
                used[k] = True
                break
        else:
            return False
    return True


def _items(node: tuple[Any, ...]) -> list[str]:
    """Elements of an unordered node (set, list, or a scalar with ``\\pm``), expanded."""
    raw = [node[1]] if node[0] == "scalar" else list(node[1])
    return [x for item in raw for x in _expand_pm(item)]


def _struct_equal(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    ka, kb = a[0], b[0]
    unordered = ("set", "list", "scalar")
    if ka == kb == "scalar" and "\\pm" not in a[1] + b[1] and "\\mp" not in a[1] + b[1]:
        return _scalar_equal(a[1], b[1])
    if ka == kb == "matrix":
        if [len(r) for r in a[1]] != [len(r) for r in b[1]]:
            return False
        return all(
            _element_equal(x, y)
            for ra, rb in zip(a[1], b[1], strict=True)
            for x, y in zip(ra, rb, strict=True)
        )
    if {ka, kb} == {"matrix", "seq"}:
        matrix, seq = (a, b) if ka == "matrix" else (b, a)
        cells = [c for row in matrix[1] for c in row]
        is_vector = len(matrix[1]) == 1 or all(len(r) == 1 for r in matrix[1])
        return (
            is_vector
            and seq[1] == "()"
            and len(cells) == len(seq[2])
            and all(_element_equal(x, y) for x, y in zip(cells, seq[2], strict=True))
        )
    if ka == kb == "seq":
        return (
            a[1] == b[1]
            and len(a[2]) == len(b[2])
            and all(_element_equal(x, y) for x, y in zip(a[2], b[2], strict=True))
        )
    if ka == kb == "union":
        return _multiset_equal(a[1], b[1], _struct_equal)
    if ka in unordered and kb in unordered:
        return _multiset_equal(_items(a), _items(b), _element_equal)
    return False


def _element_equal(x: str, y: str) -> bool:
    return x == y or _struct_equal(_structure(x), _structure(y))


# ----------------------------------------------------------------------------------------
# scalars


def _split_equation(s: str) -> tuple[str, str] | None:
    if s.count("=") != 1 or re.search(r"[<>]|\\(?:le|ge|leq|geq|ne|neq)(?![a-zA-Z])", s):
        return None
    lhs, rhs = s.split("=")
    return (lhs, rhs) if lhs and rhs else None


def _is_variable(s: str) -> bool:
    return bool(re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+|[a-zA-Z]\([a-zA-Z]\)", s))


def _base_number(s: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"([0-9A-F]+)_\{?(\d+)\}?", s)
    if not m or not 2 <= int(m.group(2)) <= 36:
        return None
    return m.group(1), int(m.group(2))


def _is_word(s: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z]{2,}(?:[\s-][A-Za-z]+)*", s))


@functools.lru_cache(maxsize=16384)
def _scalar_equal(a: str, b: str) -> bool:
    if a == b:
        return True
    if not a or not b:
        return False
    ea, eb = _split_equation(a), _split_equation(b)
    if ea and not eb:
        return _is_variable(ea[0]) and _element_equal(ea[1], b)
    if eb and not ea:
        return _is_variable(eb[0]) and _element_equal(a, eb[1])
    if ea and eb:
        if ea[0] == eb[0] and _element_equal(ea[1], eb[1]):
            return True
        return _equation_equal(ea, eb)
    ba, bb = _base_number(a), _base_number(b)
    if ba or bb:
        if ba and bb:
            try:
                return int(ba[0], ba[1]) == int(bb[0], bb[1])
            except ValueError:
                return ba == bb
        return (ba[0] if ba else a) == (bb[0] if bb else b)
    if _is_word(a) or _is_word(b):
        return a.lower() == b.lower()
    if _PLAIN_NUMBER_RE.fullmatch(a) and _PLAIN_NUMBER_RE.fullmatch(b):
        return Decimal(a) == Decimal(b)
    xa, xb = to_sympy(a), to_sympy(b)
    if xa is None or xb is None:
        return False
    return sympy_equal(xa, xb)


def _equation_equal(ea: tuple[str, str], eb: tuple[str, str]) -> bool:
    parts: list[Any] = [to_sympy(x) for x in (*ea, *eb)]
    if any(p is None for p in parts):
        return False
    la, ra, lb, rb = parts
    return proportional(la - ra, lb - rb)


# ----------------------------------------------------------------------------------------
# entry point


def _choice(s: str) -> str | None:
    m = re.fullmatch(r"\(?([A-E])\)?", s)
    return m.group(1) if m else None


def _pred_choice(s: str) -> str | None:
    m = (
        re.fullmatch(r"\(?([A-Ea-e])\)?", s)
        or re.match(r"\(([A-E])\)", s)
        or re.match(r"([A-E])(?:[:.)]|$)", s)
    )
    return m.group(1).upper() if m else None


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` after ``seconds`` (only in the main thread, when SIGALRM is free)."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def _on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@functools.lru_cache(maxsize=65536)
def _math_equal(pred: str, gold: str) -> bool:
    p, g = normalize_math_answer(pred), normalize_math_answer(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    gold_choice = _choice(g)
    if gold_choice:
        return _pred_choice(p) == gold_choice
    try:
        with _deadline(_TIME_LIMIT_S):
            return _struct_equal(_structure(p), _structure(g))
    except _Timeout:
        return False


def math_equal(pred: str | None, gold: str | None) -> bool:
    """Whether a predicted final answer is the same answer as the reference ``gold``.

    Both are LaTeX strings (a ``\\boxed{}`` wrapper is fine). Tuples and intervals compare
    element-wise with their brackets, comma lists and ``\\{...\\}`` sets in any order,
    ``x = 5`` matches ``5``, and scalars compare symbolically (``0.5`` = ``\\frac12``,
    ``2\\sqrt3`` = ``\\sqrt{12}``). Never raises; None or empty answers are never equal.
    """
    if pred is None or gold is None:
        return False
    try:
        return _math_equal(str(pred), str(gold))
    except Exception:
        return False
