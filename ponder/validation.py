"""The one check of request input before it reaches the database: JSON parsed without Python's
extensions (NaN, Infinity), every value finite, every string (keys included) valid Unicode
without NUL, nesting bounded; a document that is not only invisible characters; exactly one
email address. Messages name the field and the problem, never the value (it may be PHI)."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Protocol

NUL = "\x00"
DEFAULT_MAX_DEPTH = 32


class InvalidInput(ValueError):
    """Input that cannot be stored or used; the message never quotes the value."""


class _ValidationErrors(Protocol):
    """Pydantic's ``ValidationError`` and FastAPI's ``RequestValidationError``."""

    def errors(self) -> Iterable[Any]: ...


def validation_problems(
    exc: _ValidationErrors, *, whole: str = "", skip: str | None = None
) -> list[str]:
    """Pydantic's errors as ``loc: msg``, one per error, never the input (it may be PHI).
    ``whole`` names the object itself (an error with an empty location); ``skip`` is a
    location part left out (FastAPI's ``body``)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if skip is None or part != skip)
        problems.append(f"{where or whole}: {error['msg']}")
    return problems


def parse_json(raw: bytes | str) -> Any:
    """``json.loads`` that answers a text too deep for the parser as invalid instead of raising
    RecursionError. The tree it returns still needs ``check_fields``: Python's json accepts
    NaN and Infinity, parses 1e400 to inf and makes lone surrogates of escapes and of
    surrogate bytes, none of which PostgreSQL stores; the check names the field that holds
    them. Messages are predicates for the caller's subject: "request body is " + message."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidInput("not UTF-8 text") from exc
    except RecursionError as exc:
        raise InvalidInput("nested too deeply to be read") from exc
    except ValueError as exc:
        # The parser's message quotes no input (a position and what was expected).
        raise InvalidInput(f"not valid JSON ({exc.args[0]})") from exc


def check_value(name: str, value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise ``InvalidInput`` naming ``name`` if anything inside ``value`` cannot be stored:
    a string (or key) holding NUL or a lone surrogate, a float that is not finite, or lists
    and objects nested more than ``max_depth`` deep. Iterative: no depth can overflow it."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(name, item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(
                    f"{name} holds a number that is not finite (NaN or Infinity, or one too "
                    "large for a double such as 1e400): send a finite number or null"
                )
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise InvalidInput(
                    f"{name} is nested too deeply: at most {max_depth} levels of objects and "
                    "lists are accepted"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str):
                        _check_text(name, key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def check_fields(data: dict[Any, Any], *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """``check_value`` for every field of a request object, and its field names."""
    for key, value in data.items():
        problem = _text_problem(key) if isinstance(key, str) else None
        if problem:
            raise InvalidInput(f"a field name holds {problem}")
        check_value(str(key), value, max_depth=max_depth)


def _check_text(name: str, text: str) -> None:
    problem = _text_problem(text)
    if problem:
        raise InvalidInput(f"{name} holds {problem}, which is refused")


def _text_problem(text: str) -> str | None:
    if NUL in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (an unpaired \\ud800-\\udfff: not valid Unicode)"
    return None


# Characters that render as nothing: default-ignorable code points and fillers that are not
# in the Cf category. Whitespace (str.isspace) and every Cc/Cf/Zs/Zl/Zp character count too.
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0"
) | frozenset(chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)))
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace, format characters (zero-width space,
    BOM, bidi marks, tags), controls and invisible fillers. Stops at the first visible one."""
    for char in text:
        if char.isspace() or char in _INVISIBLE:
            continue
        if unicodedata.category(char) in _BLANK_CATEGORIES:
            continue
        return False
    return True


# One RFC 5321 mailbox, ASCII only: a dot-atom local part and a host name. No comma,
# semicolon, quote, angle bracket or whitespace (each would let one field name several
# recipients or inject a header), and no '%' or '!' (old relay-routing syntax).
_LOCAL = r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9#$&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"(?P<local>{_LOCAL})@(?P<domain>{_LABEL}(?:\.{_LABEL})*)")


def check_email(value: str) -> str:
    """The address if ``value`` is exactly one plain address, else ``InvalidInput``."""
    match = EMAIL.fullmatch(value)
    if match is None or len(value) > 254 or len(match["local"]) > 64:
        raise InvalidInput(
            "email must be exactly one address such as name@example.org, without a display "
            "name, quotes, spaces, commas or semicolons; send one address"
        )
    return value
