"""Recomputes the arithmetic in a maths working: finds each "expression = stated result" step
and evaluates the expression with a small AST walk (never ``eval``), so a verifier can say
which step is wrong and what its value is. The notation read, and why, is described in
``tasks.math_answer.tokens``."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from tasks.math_answer.tokens import WORD_OPERATORS, Token, neighbour, plain_number, tokenise

MAX_EXPRESSION_CHARS = 2_000
"""Longer expressions are not working a model would write; skipping them bounds the
parser's work and its recursion."""

RELATIVE_TOLERANCE = Fraction(1, 10**9)

_OPERATOR = {"×": "*", "x": "*", "X": "*", "÷": "/", "−": "-", "–": "-"}
_MINUS = ("-", "−", "–")
_ARITHMETIC_KINDS = {"num", "op", "times", "lparen", "rparen", "ws", "unit"}
_SILENT_KINDS = {"ws", "unit"}
_BINARY_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_SHAPE_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.USub,
    ast.UAdd,
    *_BINARY_OPS,
)

PercentReading = Literal["ratio", "label"]
PERCENT_READINGS: tuple[PercentReading, ...] = ("ratio", "label")
"""How ``n%`` is read. ``ratio``: n/100 ("20% * 50 = 10"). ``label``: the sign is a unit and
the number stays n ("12/20 x 100% = 60"). Writers use both, so a step is right when either
reading, applied to the whole step, makes it hold; a wrong step is wrong under both."""


@dataclass(frozen=True)
class Step:
    """One "expression = stated result" in the working."""

    text: str
    """The step as written, "12 × 4 = 46"; for findings."""
    expression: str
    """The left side as written, "12 × 4"."""
    stated: str
    """The stated result as written, without $ or % ("46", "120,000", "3 1/2")."""
    stated_percent: bool
    stated_start: int
    """Where ``stated`` starts in the working, for mutation."""
    stated_end: int
    computed: Fraction | None
    """The left side's value (% read as n/100); None when it cannot be evaluated (a division
    by zero), and then the step is not checked."""
    correct: bool

    @property
    def checked(self) -> bool:
        return self.computed is not None

    def describe_value(self) -> str:
        """The computed value as it should have been written: "48", "about 3.3333", "60%"."""
        assert self.computed is not None
        if self.stated_percent:
            return f"{format_value(self.computed * 100)}%"
        return format_value(self.computed)


def find_steps(text: str) -> list[Step]:
    """Every step of ``text`` whose left side holds at least one operator, in text order.
    Text that is not arithmetic is never evaluated, whatever it contains."""
    tokens = tokenise(text)
    steps: list[Step] = []
    for index, token in enumerate(tokens):
        if token.kind == "eq":
            step = _step_at(text, tokens, index)
            if step is not None:
                steps.append(step)
    return steps


def stated_results(text: str) -> list[Fraction]:
    """The number after every "=" of ``text``, whether or not its left side is arithmetic
    ("x = 18" included): the values the working says it reached."""
    tokens = tokenise(text)
    results = []
    for index, token in enumerate(tokens):
        stated = _stated_number(tokens, index) if token.kind == "eq" else None
        if stated is not None:
            negative, number = stated
            value = number.value
            if value is not None:
                results.append(-value if negative else value)
    return results


def evaluate(expression: str) -> Fraction | None:
    """The exact value of a plain arithmetic expression (numbers, + - * /, unary minus,
    parentheses), or None when it is anything else or divides by zero."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(expression, mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, RecursionError, ZeroDivisionError, _NotArithmetic):
        return None


def matches(computed: Fraction, stated: str) -> bool:
    """Whether a stated number ("48", "3.33", "1,200") is the computed value as a person
    would write it: exactly, within a relative 1e-9, or rounded half-up to the stated number
    of decimals (10/3 = 3.33, 10/3 = 3). Rounding to a whole number or to cents, which the
    brief also allows, is the case of 0 or 2 stated decimals."""
    try:
        number = Decimal(stated.replace(",", ""))
    except InvalidOperation:
        return False
    if not number.is_finite():
        return False
    exponent = number.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return _matches_value(computed, Fraction(number), decimals)


def format_value(value: Fraction) -> str:
    """Exact when the decimal ends within six places, else "about" four places; in integer
    arithmetic, so a long number is not rounded by a decimal context."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if (magnitude * 10**6).denominator == 1:
        whole, part = divmod(int(magnitude * 10**6), 10**6)
        decimals = f"{part:06d}".rstrip("0")
        text = f"{whole}.{decimals}" if decimals else str(whole)
        return "0" if text == "0" else sign + text
    whole, part = divmod(int(_round_half_up(magnitude, 4) * 10**4), 10**4)
    return f"about {sign if whole or part else ''}{whole}.{part:04d}"


class _NotArithmetic(Exception):
    pass


def _value(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _NotArithmetic
        # repr of a float is its shortest round-tripping decimal: 0.1 stays one tenth.
        return Fraction(Decimal(repr(node.value)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY_OPS):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right
    raise _NotArithmetic


def _matches_value(computed: Fraction, value: Fraction, decimals: int | None) -> bool:
    if value == computed or abs(value - computed) <= RELATIVE_TOLERANCE * abs(computed):
        return True
    return decimals is not None and _round_half_up(computed, decimals) == value


def _round_half_up(value: Fraction, decimals: int) -> Fraction:
    scale = 10**decimals
    magnitude = (abs(value) * scale + Fraction(1, 2)).__floor__()
    return Fraction(magnitude if value >= 0 else -magnitude, scale)


# Steps ----------------------------------------------------------------------------------


def _step_at(text: str, tokens: list[Token], eq_index: int) -> Step | None:
    left = _left_expression(tokens, eq_index)
    stated = _stated_number(tokens, eq_index)
    if left is None or stated is None:
        return None
    negative, number = stated
    computed = evaluate(_python(left, "ratio"))
    correct = computed is not None and any(
        _stated_holds(left, number, negative, tokens, eq_index, reading)
        for reading in PERCENT_READINGS
    )
    digits_start = number.start + len(number.text) - len(number.text.lstrip("$ "))
    stated_end = number.end - (1 if number.percent else 0)
    before_eq = neighbour(tokens, eq_index, -1)
    assert before_eq is not None  # the left side is there
    return Step(
        text=text[left[0].start : number.end],
        expression=text[left[0].start : before_eq.end],
        stated=("-" if negative else "") + text[digits_start:stated_end],
        stated_percent=number.percent,
        stated_start=digits_start,
        stated_end=stated_end,
        computed=computed,
        correct=correct,
    )


def _stated_holds(
    left: list[Token],
    number: Token,
    negative: bool,
    tokens: list[Token],
    eq_index: int,
    reading: PercentReading,
) -> bool:
    value = evaluate(_python(left, reading))
    if value is None:
        return False
    assert number.value is not None
    sign = -1 if negative else 1
    wanted = sign * number.value
    if number.percent and reading == "ratio":
        wanted /= 100
    if _matches_value(value, wanted, _stated_decimals(number, reading)):
        return True
    if number.decimals is None and " " in number.text:
        # "= 700 3/5 of the students": a mixed number, or a whole number and then a fraction
        # that starts the next sentence; either reading is what was written.
        whole = sign * int(number.text.split()[0])
        if _matches_value(value, Fraction(whole), 0):
            return True
    return _right_side_holds(value, tokens, eq_index, reading)


def _stated_decimals(number: Token, reading: PercentReading) -> int | None:
    """A percentage read as hundredths ("60%" as 0.60) has two more places than written."""
    if number.decimals is None:
        return None
    return number.decimals + 2 if number.percent and reading == "ratio" else number.decimals


def _right_side_holds(
    value: Fraction, tokens: list[Token], eq_index: int, reading: PercentReading
) -> bool:
    """The whole right side is itself an expression of the same value ("6/12 = 1/2")."""
    right = _right_expression(tokens, eq_index)
    if right is None:
        return False
    right_value = evaluate(_python(right, reading))
    return right_value is not None and _matches_value(value, right_value, None)


def _left_expression(tokens: list[Token], eq_index: int) -> list[Token] | None:
    """The longest run of arithmetic tokens directly before ``=`` that parses and holds an
    operator. A run that starts with an operator continues into prose ("12 slices * 1/3"
    read from "*") and is not a step; juxtaposed numbers left of the expression (a line
    break, "60 5 * 2") are dropped."""
    start = eq_index
    while start > 0 and tokens[start - 1].kind in _ARITHMETIC_KINDS:
        start -= 1
    run = _strip(tokens[start:eq_index])
    if not run or run[-1].kind in ("op", "times"):
        return None
    if run[0].kind in ("op", "times") and not _unary_minus_at(tokens, start, run):
        return None
    for begin in range(len(run)):
        candidate = run[begin:]
        if begin > 0 and candidate[0].kind not in ("num", "lparen"):
            continue
        if _parses(candidate):
            first = plain_number(next(t for t in candidate if t.kind == "num").text)
            if first.startswith("0") and first[:2].isdigit():
                return None  # "000" is a fragment of a number written "350 000"
            return candidate if _has_binary_operator(candidate) else None
    return None


def _unary_minus_at(tokens: list[Token], start: int, run: list[Token]) -> bool:
    """A leading minus is a sign ("-48 + 21") when glued to its number at the start of the
    text, after "=" or "("; not a minus between prose and a number."""
    sign = run[0]
    index = tokens.index(sign, start)
    glued = index + 1 < len(tokens) and tokens[index + 1].kind in ("num", "lparen")
    before = neighbour(tokens, index, -1)
    return sign.text in _MINUS and glued and (before is None or before.kind in ("eq", "lparen"))


def _right_expression(tokens: list[Token], eq_index: int) -> list[Token] | None:
    end = eq_index + 1
    while end < len(tokens) and tokens[end].kind in _ARITHMETIC_KINDS:
        end += 1
    run = _strip(tokens[eq_index + 1 : end])
    for stop in range(len(run), 0, -1):
        candidate = _strip(run[:stop])
        if candidate and _parses(candidate) and _has_binary_operator(candidate):
            return candidate
    return None


def _stated_number(tokens: list[Token], eq_index: int) -> tuple[bool, Token] | None:
    index = eq_index + 1
    while index < len(tokens) and tokens[index].kind == "ws":
        index += 1
    negative = False
    if (
        index + 1 < len(tokens)
        and tokens[index].kind == "op"
        and tokens[index].text in _MINUS
        and tokens[index + 1].kind == "num"
    ):
        negative, index = True, index + 1
    if index < len(tokens) and tokens[index].kind == "num":
        return negative, tokens[index]
    return None


def _strip(run: list[Token]) -> list[Token]:
    begin, end = 0, len(run)
    while begin < end and run[begin].kind in _SILENT_KINDS:
        begin += 1
    while end > begin and run[end - 1].kind in _SILENT_KINDS:
        end -= 1
    return run[begin:end]


def _python(run: list[Token], reading: PercentReading, *, shape: bool = False) -> str:
    """The run as Python source of numbers, operators and parentheses only; with ``shape``
    each number is 1, to see the expression's structure."""
    parts = []
    previous: Token | None = None
    for token in run:
        if token.kind == "ws":
            continue
        if token.kind == "lparen" and previous is not None and previous.kind in ("num", "rparen"):
            parts.append("*")  # "2(3 + 4)", "1/2 (68)": a number against a bracket multiplies
        previous = token
        if token.kind == "unit":
            continue
        if token.kind == "num":
            assert token.value is not None
            value = token.value / 100 if token.percent and reading == "ratio" else token.value
            if shape:
                parts.append("(1/1)" if token.fraction else "1")
            else:
                parts.append(f"({value.numerator}/{value.denominator})")
        else:
            text = token.text.lower()
            parts.append(_OPERATOR.get(text, WORD_OPERATORS.get(text, text)))
        parts.append(" ")
    return "".join(parts)


def _parses(run: list[Token]) -> bool:
    """Whether the run is one arithmetic expression; "84 eggs so 84/12" is two, which Python
    would read as a call."""
    try:
        tree = ast.parse(_python(run, "label", shape=True), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return False
    return all(isinstance(node, _SHAPE_NODES) for node in ast.walk(tree))


def _has_binary_operator(run: list[Token]) -> bool:
    """An operator between two operands: "x = 5" and "-5 = -5" are not steps."""
    try:
        tree = ast.parse(_python(run, "label", shape=True), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return False
    return any(isinstance(node, ast.BinOp) for node in ast.walk(tree))
