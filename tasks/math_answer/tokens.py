"""Reads the notation of a maths working into tokens (numbers, operators, units, prose) in
which ``tasks.math_answer.arithmetic`` finds and checks the steps.

Notation read, and why: people write units between their numbers ("20 sheep + 80 sheep =
100", "$20/hour * 35 hours = $700"), so up to ``MAX_UNIT_WORDS`` words after a number are its
label; "x" multiplies only between two operands; "3 1/2" is a mixed number; "$350 000" groups
thousands with spaces. A step whose left side runs on into words ("12 slices * 1/3 = 4" read
from the operator) or into a variable ("2x + 2 = 10") is incomplete and is not checked:
skipping costs coverage, a wrong reading would cost a false alarm."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

MAX_UNIT_WORDS = 3
"""Words after a number read as its unit ("miles per gallon"); more is prose, and ends the
expression."""

_MIXED = re.compile(r"(?<![\w.,$/])(\d+) ([1-9]\d*)/([1-9]\d*)(?![\d.,/]|\s?%)")
_TOKEN = re.compile(
    r"""
    (?P<num>(?<![\d.,$_A-WYZa-wyz])
        (?:\$\s?)?
        (?:(?<=\$)\d{1,3}(?:\ \d{3})+(?!\d|[.,]\d)|\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?
        (?P<pct>%)?
      |(?<![\d.,$_A-WYZa-wyz])\$?\.\d+(?P<pct2>%)?)
    |(?P<op>[+\-*/×÷−–])
    |(?P<word>[A-Za-z][A-Za-z'’]*)
    |(?P<lparen>\()
    |(?P<rparen>\))
    |(?P<eq>=)
    |(?P<ws>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
WORD_OPERATORS = {"plus": "+", "minus": "-", "times": "*"}
"""Operators spelled out between two operands ("10 plus 9 plus 1 equals 20")."""


@dataclass(frozen=True)
class Token:
    """A piece of the working as read: ``kind`` is one of num, op, times, word, unit, eq,
    lparen, rparen, ws and other."""

    kind: str
    text: str
    start: int
    end: int
    percent: bool = False
    value: Fraction | None = None
    """For a number: its value without $, commas or %."""
    decimals: int | None = None
    """For a number: its decimal places as written; None for a mixed number ("3 1/2") or
    a fraction."""
    fraction: bool = False
    """A fraction written tight ("84/12"): one number, but a division all the same."""


def tokenise(text: str) -> list[Token]:
    """The whole text as tokens, in order, each word read in its context."""
    return _classify_words(_tight_fractions(_raw_tokens(text)))


def _raw_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        mixed = _MIXED.match(text, position)
        if mixed and int(mixed.group(2)) < int(mixed.group(3)):
            whole, numerator, denominator = (int(g) for g in mixed.groups())
            value = whole + Fraction(numerator, denominator)
            tokens.append(Token("num", mixed.group(0), position, mixed.end(), value=value))
            position = mixed.end()
            continue
        match = _TOKEN.match(text, position)
        assert match is not None  # the last alternative takes any character
        kind = "num" if match.group("num") is not None else match.lastgroup or "other"
        if kind == "num":
            tokens.append(_number_token(match))
        else:
            tokens.append(Token(kind, match.group(0), match.start(), match.end()))
        position = match.end()
    return tokens


def _tight_fractions(raw: list[Token]) -> list[Token]:
    """A fraction written tight between spaced operators is one number ("1 1/2 / 1/2 = 3"),
    so "a / b/c" divides by the fraction. A tight chain ("60/2/3") stays left to right."""
    tokens: list[Token] = []
    index = 0
    while index < len(raw):
        if _is_tight_fraction(raw, index):
            numerator, denominator = raw[index], raw[index + 2]
            value = Fraction(int(numerator.text), int(denominator.text))
            tokens.append(
                Token(
                    "num",
                    numerator.text + "/" + denominator.text,
                    numerator.start,
                    denominator.end,
                    value=value,
                    fraction=True,
                )
            )
            index += 3
            continue
        tokens.append(raw[index])
        index += 1
    return tokens


def _is_tight_fraction(raw: list[Token], index: int) -> bool:
    if index + 2 >= len(raw):
        return False
    numerator, slash, denominator = raw[index : index + 3]
    if not (
        numerator.kind == "num"
        and numerator.text.isdigit()
        and slash.text == "/"
        and denominator.kind == "num"
        and denominator.text.isdigit()
        and int(denominator.text) != 0
        and numerator.end == slash.start
        and slash.end == denominator.start
    ):
        return False
    before = raw[index - 1] if index > 0 else None
    after = raw[index + 3] if index + 3 < len(raw) else None
    chained_before = before is not None and before.text == "/" and before.end == numerator.start
    chained_after = after is not None and after.text == "/" and after.start == denominator.end
    return not (chained_before or chained_after)


def _number_token(match: re.Match[str]) -> Token:
    text = match.group(0)
    percent = bool(match.group("pct") or match.group("pct2"))
    digits = plain_number(text)
    number = Decimal(digits)
    _, _, fraction = digits.partition(".")
    return Token(
        "num",
        text,
        match.start(),
        match.end(),
        percent=percent,
        value=Fraction(number),
        decimals=len(fraction),
    )


def _classify_words(raw: list[Token]) -> list[Token]:
    """Reads each word as a multiplication sign, a number's unit, or prose that ends an
    expression; a "-" or "/" joining a word to what comes before ("12-mile", "$20/hour")
    is part of the unit."""
    tokens: list[Token] = []
    after_operand = False
    unit_words = 0
    for index, token in enumerate(raw):
        kind = token.kind
        if kind == "word":
            kind = _word_kind(raw, index, token, after_operand, unit_words)
            if kind == "unit":
                unit_words += 1
            elif kind == "word":
                after_operand = False
        elif kind == "op" and token.text in "-/" and _joins_unit(raw, index, after_operand):
            kind = "unit"
        elif kind in ("num", "rparen"):
            after_operand, unit_words = True, 0
        elif kind != "ws":
            after_operand = False
        tokens.append(_replace_kind(token, kind))
    return tokens


def _word_kind(
    raw: list[Token], index: int, token: Token, after_operand: bool, unit_words: int
) -> str:
    after = neighbour(raw, index, 1)
    before_operand = after is not None and after.kind in ("num", "lparen")
    word = token.text.lower()
    if after_operand and before_operand and word in ("x", *WORD_OPERATORS):
        return "times" if word == "x" else "op"
    if after_operand and word == "equals" and after is not None and after.kind == "num":
        return "eq"
    glued = index > 0 and raw[index - 1].kind == "num"
    if len(token.text) == 1 and glued:
        return "word"  # "2x": an algebra variable, so the expression is not plain arithmetic
    if after_operand and unit_words < MAX_UNIT_WORDS and len(token.text) > 1:
        return "unit"
    return "word"


def _joins_unit(raw: list[Token], index: int, after_operand: bool) -> bool:
    before = raw[index - 1] if index > 0 else None
    after = raw[index + 1] if index + 1 < len(raw) else None
    return (
        after_operand
        and before is not None
        and before.kind in ("num", "word")
        and after is not None
        and after.kind == "word"
        and len(after.text) > 1
    )


def _replace_kind(token: Token, kind: str) -> Token:
    if kind == token.kind:
        return token
    return Token(
        kind,
        token.text,
        token.start,
        token.end,
        token.percent,
        token.value,
        token.decimals,
        token.fraction,
    )


def neighbour(tokens: list[Token], index: int, direction: int) -> Token | None:
    """The nearest token that is not whitespace, before (-1) or after (1) ``index``."""
    index += direction
    while 0 <= index < len(tokens):
        if tokens[index].kind != "ws":
            return tokens[index]
        index += direction
    return None


def plain_number(number: str) -> str:
    """A number's digits as written, without $, commas, % or grouping spaces."""
    return number.replace("$", "").replace(",", "").replace("%", "").replace(" ", "")
