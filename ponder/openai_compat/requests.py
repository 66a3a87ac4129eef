"""A request file's lines (``{custom_id, method, url, body}``) checked and turned into native
batch items. A line that is not a request at all refuses the whole file, listing every such
line; a well-formed request the server cannot run (an unsupported url, a body the endpoint
refuses) becomes a per-line error in the batch's error file instead of a job."""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ValidationError

from ponder.batches.upload import BatchItem, check_item, iter_lines
from ponder.config import Settings
from ponder.errors import InvalidRequest, PayloadTooLarge, PonderError
from ponder.openai_compat.chat import chat_job_fields
from ponder.openai_compat.errors import InvalidOpenAIRequest
from ponder.validation import InvalidInput, check_value, parse_json, validation_problems

JOBS_URL = "/v1/jobs"
CHAT_URL = "/v1/chat/completions"
SUPPORTED_URLS = (JOBS_URL, CHAT_URL)
MAX_CUSTOM_ID = 200
MAX_LISTED_ERRORS = 1000
"""Bad lines listed in a refusal; the message gives the total."""
SPOOL_IN_MEMORY_BYTES = 1024 * 1024


@dataclass
class LineError:
    """A well-formed request line answered with an error instead of a job."""

    line: int
    custom_id: str
    code: str
    message: str

    def as_row(self) -> dict[str, Any]:
        return {"line": self.line, "custom_id": self.custom_id, "code": self.code,
                "message": self.message}  # fmt: skip


@dataclass
class RequestPlan:
    items: IO[bytes]
    """Native batch lines (JSONL), a blank line for each request that became no job, so that
    an item's ``batch_index`` is its request's line number."""
    jobs: int = 0
    line_errors: list[LineError] = field(default_factory=list)
    chat_lines: list[int] = field(default_factory=list)


class _BadLine(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def plan_requests(
    content: bytes, *, priority: int, tenant_name: str, settings: Settings
) -> RequestPlan:
    """Check every line of a request file. Raises ``InvalidOpenAIRequest`` listing each line
    that is not a request (not JSON, no ``custom_id``, a duplicate ``custom_id``, a method
    other than POST, no url, a body that is not an object): then nothing is written."""
    plan = RequestPlan(items=tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES))  # noqa: SIM115
    try:
        _plan_lines(content, plan, priority=priority, tenant_name=tenant_name, settings=settings)
    except BaseException:
        plan.items.close()
        raise
    plan.items.seek(0)
    return plan


def _plan_lines(
    content: bytes, plan: RequestPlan, *, priority: int, tenant_name: str, settings: Settings
) -> None:
    limits = settings.limits
    refused: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    lines = written = 0
    for number, raw in iter_lines(io.BytesIO(content), max_line_bytes=limits.max_request_bytes):
        lines += 1
        if lines > limits.max_batch_items:
            raise PayloadTooLarge(
                f"the input file has more than {limits.max_batch_items} requests; split it "
                "into several batches"
            )
        # Blank lines keep the numbering: item i of the native batch is line i of the file.
        plan.items.write(b"\n" * (number - 1 - written))
        written = number
        try:
            custom_id, url, body = _request(raw, max_line_bytes=limits.max_request_bytes)
            if (earlier := seen.setdefault(custom_id, number)) != number:
                raise _BadLine(
                    "duplicate_custom_id",
                    f"custom_id duplicates the one on line {earlier}; each request needs its own",
                    "custom_id",
                )
        except _BadLine as bad:
            refused.append(
                {"code": bad.code, "message": bad.message, "param": bad.param, "line": number}
            )
        if refused:
            continue  # the file is refused: only its bad lines matter now
        try:
            item = _item(custom_id, url, body)
            check_item(item, priority=priority, tenant_name=tenant_name, settings=settings)
        except _BadLine as bad:
            plan.line_errors.append(LineError(number, custom_id, bad.code, bad.message))
            plan.items.write(b"\n")
            continue
        except PonderError as exc:
            plan.line_errors.append(LineError(number, custom_id, "invalid_request", exc.message))
            plan.items.write(b"\n")
            continue
        line = item.model_dump(mode="json", exclude_unset=True)
        plan.items.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        plan.jobs += 1
        if url == CHAT_URL:
            plan.chat_lines.append(number)
    if refused:
        listed = refused[:MAX_LISTED_ERRORS]
        first = "; ".join(f"line {e['line']}: {e['message']}" for e in listed[:3])
        raise InvalidOpenAIRequest(
            f"the input file was refused, nothing was submitted: {len(refused)} invalid "
            f"line{'s' if len(refused) > 1 else ''} ({first}{'; …' if len(refused) > 3 else ''}"
            '); each line must be a JSON object with custom_id, method "POST", url and an '
            "object body",
            param="input_file_id",
            code="invalid_input_file",
            errors={"object": "list", "data": listed},
        )
    if lines == 0:
        raise InvalidOpenAIRequest(
            "the input file has no requests: one JSON object per line with custom_id, method, "
            "url and body",
            param="input_file_id",
            code="empty_input_file",
        )


def _request(raw: bytes | None, *, max_line_bytes: int) -> tuple[str, str, dict[str, Any]]:
    """(custom_id, url, body) of a line that is a request, else ``_BadLine``. Messages never
    quote the line: it may hold a document."""
    if raw is None:
        raise _BadLine("line_too_long", f"line is longer than {max_line_bytes} bytes")
    try:
        value = parse_json(raw)
    except InvalidInput as exc:
        raise _BadLine("invalid_json_line", f"line is {exc}") from exc
    if not isinstance(value, dict):
        raise _BadLine("invalid_json_line", "line must be a JSON object")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _BadLine("missing_custom_id", "custom_id is missing or not a string", "custom_id")
    try:
        check_value("custom_id", custom_id)
    except InvalidInput as exc:
        raise _BadLine("invalid_custom_id", str(exc), "custom_id") from exc
    if len(custom_id) > MAX_CUSTOM_ID:
        raise _BadLine(
            "invalid_custom_id", f"custom_id is longer than {MAX_CUSTOM_ID} characters", "custom_id"
        )
    if value.get("method") != "POST":
        raise _BadLine("invalid_method", 'method must be "POST"', "method")
    url = value.get("url")
    if not isinstance(url, str) or not url:
        raise _BadLine("missing_url", "url is missing or not a string", "url")
    body = value.get("body")
    if not isinstance(body, dict):
        raise _BadLine("invalid_body", "body must be a JSON object", "body")
    return custom_id, url, body


def _item(custom_id: str, url: str, body: dict[str, Any]) -> BatchItem:
    """The native batch item for a request, or ``_BadLine`` saying why there is none."""
    if url == JOBS_URL:
        fields = body
    elif url == CHAT_URL:
        try:
            fields = chat_job_fields(body)
        except InvalidRequest as exc:
            raise _BadLine("invalid_request", exc.message) from exc
    else:
        shown = url[:100] if url.isprintable() else "this url"
        raise _BadLine(
            "unsupported_url",
            f"{shown!r} is not supported; use {' or '.join(SUPPORTED_URLS)}",
        )
    if "custom_id" in fields:
        raise _BadLine("invalid_request", "custom_id goes on the request line, not in its body")
    try:
        return BatchItem.model_validate({**fields, "custom_id": custom_id})
    except ValidationError as exc:
        raise _BadLine(
            "invalid_request", "; ".join(validation_problems(exc, whole="body"))
        ) from exc
