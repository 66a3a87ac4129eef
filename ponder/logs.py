"""Logging setup. Log ids and counts only: never document text, prompts or extracted content.

A second line of defence stands behind that rule: every record made in the process, by any
logger and for any handler (Celery's and uvicorn's included, added after this setup), passes
``RedactSqlParameters`` as it is created. It removes the parameters and the quoted data that
database errors carry (SQLAlchemy's ``[parameters: ...]``, PostgreSQL's ``DETAIL`` and
``CONTEXT`` lines), the rows and parameters SQLAlchemy's engine logger would print, and the
query string of uvicorn's access log lines.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from typing import Any

REDACTED = "[redacted]"

# SQLAlchemy appends "[parameters: {...}]" (possibly many lines) before its
# "(Background on this error ...)" link; PostgreSQL quotes rows and JSON in DETAIL/CONTEXT.
_PATTERNS = (
    # Up to SQLAlchemy's link, else to the end: redacting too much beats leaking.
    (re.compile(r"\[parameters: .*?(?=\n\(Background on this error|\Z)", re.S),
     "[parameters: " + REDACTED + "]"),
    (re.compile(r"^(\s*(?:DETAIL|CONTEXT|HINT|WHERE):).*$", re.M), r"\1 " + REDACTED),
)  # fmt: skip
_SQL_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.pool")


def redact(text: str) -> str:
    """``text`` without the SQL parameters and quoted data a database error carries."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSqlParameters(logging.Filter):
    """Rewrites a record in place so no handler can format parameters from it: the message
    made final and redacted, the exception text made and redacted once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_SQL_LOGGERS) and record.args:
            # The engine logger's args are statement parameters or fetched rows.
            record.args = tuple(
                a if isinstance(a, int | float) else REDACTED for a in _as_tuple(record.args)
            )
        elif record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # (client, method, path with query, http version, status): a query string can
            # hold whatever a client put there, so only the path is kept.
            record.args = tuple(
                _without_query(a) if i == 2 else a for i, a in enumerate(record.args)
            )
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep its format string, never its arguments
            message = f"{record.msg} {REDACTED}"
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Formatters use a record's exc_text when it is set instead of formatting
            # exc_info themselves, so the redacted text is what every handler prints.
            formatted = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = formatted.rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _without_query(path: Any) -> Any:
    if isinstance(path, str) and "?" in path:
        return path.split("?", 1)[0] + "?" + REDACTED
    return path


def _as_tuple(args: Any) -> tuple[Any, ...]:
    return args if isinstance(args, tuple) else (args,)


_REDACTOR = RedactSqlParameters()


def install_redaction() -> None:
    """Make every record of this process pass ``RedactSqlParameters`` as it is created.
    A filter on a logger sees only that logger's own records and one on a handler only that
    handler's; the record factory sees them all, whoever configures handlers later."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "ponder_redacts", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _REDACTOR.filter(record)
        return record

    make_record.ponder_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def configure_logging(level: str | None = None) -> None:
    install_redaction()
    logging.basicConfig(
        level=level or os.environ.get("PONDER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if _REDACTOR not in handler.filters:
            handler.addFilter(_REDACTOR)
    # vLLM logs prompts at DEBUG on some paths; keep it at INFO and above.
    logging.getLogger("vllm").setLevel(logging.WARNING)
