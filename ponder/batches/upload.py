"""Batch uploads: JSONL read line by line from a (spooled) file, never all at once. Every line
is checked before anything is written, and every bad line is reported with its number."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ConfigDict, Field, ValidationError

from ponder.config import Settings
from ponder.errors import InvalidRequest, PayloadTooLarge, PonderError
from ponder.jobs.contract import JobContent, JobOptions
from ponder.jobs.service import JobRequest, frozen_config
from ponder.storable import StorableInput
from ponder.validation import InvalidInput, parse_json, validation_problems

MAX_LISTED_IN_MESSAGE = 5


class BatchItem(StorableInput, JobContent, JobOptions):
    """One line of a batch upload: a job's options and content. Its priority and who is told
    are set once on the batch, for every item."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=200)
    """The caller's id for the item, unique in the batch; results are matched by it."""

    def job_request(self, *, priority: int) -> JobRequest:
        return JobRequest(**self.model_dump(exclude={"custom_id"}), priority=priority)


class InvalidLine(ValueError):
    """A line that is not a valid item; the message never quotes the line (it may be PHI)."""


def iter_lines(upload: IO[bytes], *, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each non-blank line from the start of ``upload``; bytes is None
    for a line longer than ``max_line_bytes``, whose rest is skipped without being kept."""
    upload.seek(0)
    number = 0
    while raw := upload.readline(max_line_bytes + 1):
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            while (rest := upload.readline(max_line_bytes)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        elif raw.strip():
            yield number, raw


def parse_line(raw: bytes | None, *, max_line_bytes: int) -> BatchItem:
    if raw is None:
        raise InvalidLine(f"line is longer than {max_line_bytes} bytes")
    try:
        value = parse_json(raw)
    except InvalidInput as exc:
        message = str(exc)
        raise InvalidLine(
            message if message.startswith("not valid") else f"line is {message}"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidLine("line must be a JSON object")
    try:
        return BatchItem.model_validate(value)
    except ValidationError as exc:
        raise InvalidLine("; ".join(validation_problems(exc, whole="line"))) from exc


def check_item(
    item: BatchItem, *, priority: int, tenant_name: str, settings: Settings
) -> dict[str, Any]:
    """The job configuration the item would get; raises the same errors as ``POST /v1/jobs``."""
    return frozen_config(item.job_request(priority=priority), settings, tenant_name)


@dataclass
class UploadCheck:
    items: int = 0
    sha256: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)


def check_upload(
    upload: IO[bytes], *, priority: int, tenant_name: str, settings: Settings
) -> UploadCheck:
    """One pass over the whole upload. Raises ``InvalidRequest`` listing every bad line (an
    empty upload, malformed JSON, missing fields, unknown tasks, duplicate custom_ids) and
    ``PayloadTooLarge`` past ``limits.max_batch_items``. Only the custom_ids are kept."""
    limits = settings.limits
    check = UploadCheck()
    digest = hashlib.sha256()
    first_seen: dict[str, int] = {}
    for number, raw in iter_lines(upload, max_line_bytes=limits.max_request_bytes):
        check.items += 1
        if check.items > limits.max_batch_items:
            raise PayloadTooLarge(
                f"the upload has more than {limits.max_batch_items} items; split it into "
                "several batches"
            )
        digest.update(raw or f"<line {number} too long>".encode())
        try:
            item = parse_line(raw, max_line_bytes=limits.max_request_bytes)
            if (earlier := first_seen.setdefault(item.custom_id, number)) != number:
                raise InvalidLine(f"custom_id duplicates the one on line {earlier}")
            check_item(item, priority=priority, tenant_name=tenant_name, settings=settings)
        except (InvalidLine, PonderError) as exc:
            message = exc.message if isinstance(exc, PonderError) else str(exc)
            check.errors.append({"line": number, "error": message})
    if check.errors:
        listed = "; ".join(
            f"line {e['line']}: {e['error']}" for e in check.errors[:MAX_LISTED_IN_MESSAGE]
        )
        more = len(check.errors) - MAX_LISTED_IN_MESSAGE
        raise InvalidRequest(
            f"batch rejected, nothing was submitted: {len(check.errors)} invalid "
            f"line{'s' if len(check.errors) > 1 else ''} ({listed}"
            f"{f'; and {more} more in detail.errors' if more > 0 else ''})",
            errors=check.errors,
        )
    if check.items == 0:
        raise InvalidRequest(
            "the upload has no items: send one JSON object per line with custom_id, task and "
            "document"
        )
    check.sha256 = digest.hexdigest()
    return check
