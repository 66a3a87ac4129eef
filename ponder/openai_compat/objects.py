"""The public shapes of the OpenAI-compatible surface (OpenAI's file, batch and list objects,
times as Unix seconds) and their making from rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ponder.models import OpenAIFile
from ponder.openai_compat import service
from ponder.openai_compat.service import BatchView


def unix(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str = Field(description="`batch` (an upload) or `batch_output` (a batch's results).")
    status: Literal["processed"] = "processed"
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class RequestCounts(BaseModel):
    total: int
    completed: int = Field(description="Requests answered (status_code 200).")
    failed: int = Field(
        description="Requests without an answer; their lines are in the error file."
    )


class BatchObject(BaseModel):
    """OpenAI's batch object. ``status``: ``in_progress``, ``finalizing``, ``completed``,
    ``cancelling``, ``cancelled`` or ``expired`` (never ``validating`` nor ``failed``: the
    request file is checked when the batch is created, and refused whole if a line is not a
    request)."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: dict[str, Any] | None = None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None = None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, Any] | None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


def file_object(found: OpenAIFile) -> FileObject:
    return FileObject(
        id=found.id,
        bytes=found.size_bytes,
        created_at=int(found.created_at.timestamp()),
        filename=found.filename,
        purpose=found.purpose,
    )


def batch_object(view: BatchView) -> BatchObject:
    status = service.status_of(view)
    ended = unix(service.ended_at(view))
    native = view.native.batch
    return BatchObject(
        id=view.batch.id,
        endpoint=view.batch.endpoint,
        input_file_id=view.batch.input_file_id,
        completion_window=view.batch.completion_window,
        status=status,
        output_file_id=view.batch.output_file_id,
        error_file_id=view.batch.error_file_id,
        created_at=int(view.batch.created_at.timestamp()),
        in_progress_at=int(view.batch.created_at.timestamp()),
        expires_at=unix(service.expires_at(view)),
        finalizing_at=ended if status in ("finalizing", "completed") else None,
        completed_at=unix(view.batch.files_made_at) if status == "completed" else None,
        expired_at=ended if status == "expired" else None,
        cancelling_at=unix(native.cancel_requested_at),
        cancelled_at=ended if status == "cancelled" else None,
        request_counts=RequestCounts(**service.request_counts(view)),
        metadata=service.metadata_of(view),
    )
