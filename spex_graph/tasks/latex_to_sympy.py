"""A small LaTeX-to-sympy converter for the common subset of final answers, and a
numeric equality test on the result.

``sympy.parsing.latex`` needs antlr, which is not a dependency, so this module parses the
subset that final answers use: numbers, single-letter variables (``x_1`` too), ``+ - * /``,
``\\cdot``, ``\\times``, ``\\div``, ``^``, ``\\frac``, ``\\sqrt``, ``\\binom``, ``\\pi``,
``\\infty``, Greek letters, ``|x|``, ``!``, the usual functions and implicit
multiplication. It emits Python code made only of names it chose itself, so the
``eval`` inside ``parse_expr`` never sees user text. Anything else yields ``None``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["proportional", "sympy_equal", "to_sympy"]

_MAX_LEN = 400
_MAX_SYMBOLS = 8
_MAX_EXPONENT_DEPTH = 2
_FUNCS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "cot": "cot",
    "sec": "sec",
    "csc": "csc",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "ln": "log",
    "log": "log",
    "exp": "exp",
}
_GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
}
_MUL_COMMANDS = {"cdot", "times", "ast"}
_SKIP_COMMANDS = {"left", "right", "displaystyle", "!", ",", ";", ":", " ", "quad", "qquad"}
_ATOM_COMMANDS = {"frac", "sqrt", "binom", "pi", "infty", "infinity"} | _GREEK
# Irrational-looking positive sample points for the free symbols of an expression.
_POINTS = (
    "0.5772156649015329",
    "1.618033988749895",
    "0.7071067811865476",
    "1.4142135623730951",
    "2.718281828459045",
    "0.3183098861837907",
    "1.2599210498948732",
    "0.9189385332046727",
    "2.23606797749979",
    "0.6931471805599453",
    "1.7320508075688772",
)


class _Fail(Exception):
    """The input is outside the supported subset."""


class _Parser:
    """Recursive-descent translator from LaTeX to sympy-constructing Python code."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.exponent_depth = 0

    def parse(self) -> str:
        code = self.expr("")
        if self.i != len(self.s):
            raise _Fail
        return code

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_ws(self) -> None:
        while self.peek().isspace():
            self.i += 1

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise _Fail
        self.i += 1

    def command_name(self) -> str:
        """The name of the command at ``self.i`` (which is a backslash), not consumed."""
        m = re.match(r"\\([a-zA-Z]+|.)", self.s[self.i :])
        if not m:
            raise _Fail
        return m.group(1)

    def take_command(self) -> str:
        name = self.command_name()
        self.i += 1 + len(name)
        return name

    def starts_atom(self) -> bool:
        c = self.peek()
        if c.isdigit() or c == "." or c.isalpha():
            return True
        return c == "\\" and self.command_name() in _ATOM_COMMANDS

    def expr(self, stop: str) -> str:
        parts: list[str] = []
        prev_atom = False
        while True:
            self.skip_ws()
            c = self.peek()
            if c == "":
                if stop:
                    raise _Fail
                break
            if c in stop:
                break
            if c in "+-*/":
                parts.append(c)
                prev_atom = False
                self.i += 1
                continue
            if c == "\\":
                name = self.command_name()
                if name in _MUL_COMMANDS or name == "div":
                    self.take_command()
                    parts.append("*" if name != "div" else "/")
                    prev_atom = False
                    continue
                if name in _SKIP_COMMANDS:
                    self.take_command()
                    continue
            atom = self.postfix(self.primary())
            if prev_atom:
                parts.append("*")
            parts.append(atom)
            prev_atom = True
        if not parts:
            raise _Fail
        return "".join(parts)

    def postfix(self, atom: str) -> str:
        while True:
            c = self.peek()
            if c == "^":
                self.i += 1
                self.exponent_depth += 1
                if self.exponent_depth > _MAX_EXPONENT_DEPTH:
                    raise _Fail  # power towers: evaluating them can take forever
                atom = f"({atom})**({self.exponent()})"
                self.exponent_depth -= 1
            elif c == "!":
                self.i += 1
                atom = f"factorial({atom})"
            else:
                return atom

    def exponent(self) -> str:
        self.skip_ws()
        c = self.peek()
        if c == "-":
            self.i += 1
            return f"-({self.exponent()})"
        if c.isdigit():
            m = re.match(r"\d+", self.s[self.i :])
            assert m is not None
            self.i += m.end()
            return f"Integer('{m.group(0)}')"
        return self.primary()

    def argument(self) -> str:
        """A macro argument: a braced group or a single token (``\\frac12``)."""
        self.skip_ws()
        c = self.peek()
        if c == "{" or c == "\\":
            return self.primary()
        if c.isdigit():
            self.i += 1
            return f"Integer({c})"
        if c.isalpha():
            self.i += 1
            return self.symbol(c)
        raise _Fail

    def symbol(self, letter: str) -> str:
        if self.peek() == "_":
            self.i += 1
            if self.peek() == "{":
                end = self.s.find("}", self.i)
                if end < 0:
                    raise _Fail
                sub = self.s[self.i + 1 : end]
                self.i = end + 1
            else:
                sub = self.peek()
                self.i += 1
            if not re.fullmatch(r"[A-Za-z0-9]+", sub):
                raise _Fail
            return f"Symbol('{letter}_{sub}')"
        if letter == "i":
            return "I"
        if letter == "e":
            return "E"
        return f"Symbol('{letter}')"

    def primary(self) -> str:
        self.skip_ws()
        c = self.peek()
        if c.isdigit() or c == ".":
            m = re.match(r"\d*\.?\d*", self.s[self.i :])
            assert m is not None
            num = m.group(0)
            if not any(ch.isdigit() for ch in num):
                raise _Fail
            self.i += m.end()
            return f"Rational('{num}')" if "." in num else f"Integer('{num}')"
        if c.isalpha():
            self.i += 1
            return self.symbol(c)
        closers = {"(": ")", "[": "]", "{": "}", "|": "|"}
        if c in closers:
            self.i += 1
            inner = self.expr(closers[c])
            self.expect(closers[c])
            return f"Abs({inner})" if c == "|" else f"({inner})"
        if c == "\\":
            return self.command_atom(self.take_command())
        raise _Fail

    def command_atom(self, name: str) -> str:
        if name == "frac":
            num = self.argument()
            den = self.argument()
            return f"(({num})/({den}))"
        if name == "binom":
            top = self.argument()
            bottom = self.argument()
            return f"binomial({top},{bottom})"
        if name == "sqrt":
            self.skip_ws()
            if self.peek() == "[":
                self.i += 1
                index = self.expr("]")
                self.expect("]")
                return f"root({self.argument()},{index})"
            return f"sqrt({self.argument()})"
        if name == "pi":
            return "pi"
        if name in ("infty", "infinity"):
            return "oo"
        if name in _GREEK:
            return f"Symbol('{name}')"
        if name in _FUNCS:
            return self.function(name)
        raise _Fail

    def function(self, name: str) -> str:
        power = None
        base = None
        self.skip_ws()
        if self.peek() == "^":
            self.i += 1
            power = self.exponent()
            self.skip_ws()
        if name == "log" and self.peek() == "_":
            self.i += 1
            base = self.argument()
            self.skip_ws()
        if self.peek() in ("(", "{"):
            arg = self.postfix(self.primary())
        else:
            atoms = [self.postfix(self.primary())]
            while True:
                self.skip_ws()
                if not self.peek() or not self.starts_atom():
                    break
                atoms.append(self.postfix(self.primary()))
            arg = "*".join(atoms)
        code = f"log({arg},{base})" if base is not None else f"{_FUNCS[name]}({arg})"
        return f"({code})**({power})" if power is not None else code


def latex_to_code(latex: str) -> str | None:
    """Python code (sympy constructors) for a LaTeX expression, or None if unsupported."""
    if not latex or len(latex) > _MAX_LEN:
        return None
    try:
        return _Parser(latex).parse()
    except (_Fail, IndexError, RecursionError):
        return None


@functools.lru_cache(maxsize=8192)
def to_sympy(latex: str) -> Any | None:
    """The sympy expression (unevaluated) for a LaTeX answer, or None if unsupported."""
    code = latex_to_code(latex)
    if code is None:
        return None
    try:
        from sympy.parsing.sympy_parser import parse_expr

        return parse_expr(code, transformations=(), evaluate=False)
    except Exception:
        return None


def _value(expr: Any, subs: dict[Any, Any]) -> Any | None:
    """Numeric value of ``expr`` at ``subs`` with 30 digits, or None if not a number."""
    value = expr.evalf(30, subs=subs) if subs else expr.evalf(30)
    if not value.is_number:
        return None
    return value


def _close(a: Any, b: Any, rel_tol: float) -> bool:
    """Whether two sympy numbers agree to ``rel_tol`` (infinities must match exactly)."""
    if a.is_finite is False or b.is_finite is False:
        return bool(a == b)
    diff = abs((a - b).evalf(30))
    scale = max(abs(a), abs(b))
    return bool(diff <= rel_tol * scale) or bool(diff <= 1e-20)


def _sample_points(symbols: list[Any], count: int) -> list[dict[Any, Any]]:
    from sympy import Float

    return [
        {sym: Float(_POINTS[(3 * k + j) % len(_POINTS)], 30) for j, sym in enumerate(symbols)}
        for k in range(count)
    ]


def sympy_equal(a: Any, b: Any, rel_tol: float = 1e-15) -> bool:
    """Whether two sympy expressions are equal, tested numerically.

    Constants are compared with 30-digit arithmetic to a relative ``rel_tol``; expressions
    with free symbols are compared at three sample points. Never raises: any sympy failure
    gives False.
    """
    try:
        symbols = sorted(a.free_symbols | b.free_symbols, key=str)
        if len(symbols) > _MAX_SYMBOLS:
            return False
        points = _sample_points(symbols, 3 if symbols else 1)
        for subs in points:
            va, vb = _value(a, subs), _value(b, subs)
            if va is None or vb is None or not _close(va, vb, rel_tol):
                return False
        return True
    except Exception:
        return False


def proportional(a: Any, b: Any, rel_tol: float = 1e-15) -> bool:
    """Whether ``a == k * b`` for one nonzero constant ``k`` (equations ``a = 0``, ``b = 0``)."""
    try:
        symbols = sorted(a.free_symbols | b.free_symbols, key=str)
        if not symbols or len(symbols) > _MAX_SYMBOLS:
            return sympy_equal(a, b, rel_tol)
        ratio = None
        for subs in _sample_points(symbols, 4):
            va, vb = _value(a, subs), _value(b, subs)
            if va is None or vb is None or va.is_finite is False or vb.is_finite is False:
                return False
            if abs(vb) <= 1e-20:
                if abs(va) > 1e-20:
                    return False
                continue
            r = (va / vb).evalf(30)
            if abs(r) <= 1e-20:
                return False
            if ratio is None:
                ratio = r
            elif not _close(r, ratio, rel_tol):
                return False
        return ratio is not None
    except Exception:
        return False
