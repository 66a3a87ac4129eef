"""Nightly runs: beat sends ``ponder.nightly_run`` with a configured run's name (see
``ponder.queue.nightly_schedule``); each file new in the run's inbox becomes an item of one
batch, and the batch report goes out when its items have ended.

A file's SHA-256 is recorded (per tenant and run) in the transaction that creates the batch,
so a file is submitted at most once, even if it is dropped into the inbox again or moving it to
the archive failed. Files are moved only after that commit, and only while they are still the
very file that was read. Each file is judged on its own: a bad one is refused with a reason
in the batch's ``rejected_files`` and never stops the run."""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from ponder.batches.inbox import FileRefused, SeenFile, move_if_unchanged, open_inbox, read_capped
from ponder.batches.service import BatchOptions, insert_items, new_batch
from ponder.batches.state import close_batch_if_ended
from ponder.batches.upload import BatchItem, check_item
from ponder.config import NightlyRunSettings, Settings
from ponder.db import session_scope
from ponder.errors import PonderError
from ponder.models import InboxFile, Tenant, utcnow
from ponder.validation import validation_problems

logger = logging.getLogger(__name__)

SPOOL_IN_MEMORY_BYTES = 4 * 1024 * 1024
MAX_NAME_CHARS = 200
"""The file name is the item's ``custom_id`` (``BatchItem.custom_id``: at most 200)."""

NOT_UTF8 = "not UTF-8 text"
HOLDS_NUL = (
    "holds a NUL byte, which text never does (a UTF-16 file without a byte order mark looks "
    "like this): save it as UTF-8 text"
)


@dataclass(frozen=True)
class Handled:
    name: str
    """As on disk (undecodable bytes as surrogates)."""
    group: str
    """Archive sub-folder: "" (submitted), "rejected" or "duplicates"."""
    seen: SeenFile


@dataclass
class NightlyReport:
    batch_id: str | None = None
    submitted: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    """``{"file", "error"}`` per refused file, as in the batch's ``rejected_files``."""
    duplicates: list[str] = field(default_factory=list)
    left_in_inbox: list[str] = field(default_factory=list)
    """Files replaced or changed after being read: not archived, the next run reads them."""
    handled: list[Handled] = field(default_factory=list, repr=False)


def find_run(settings: Settings, name: str) -> NightlyRunSettings:
    for run in settings.nightly:
        if run.name == name:
            return run
    raise ValueError(f"no nightly run named {name!r} in the settings")


def shown_name(name: str) -> str:
    """The name for reports and the database: a byte that is not UTF-8 is shown as ``\\xff``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def inbox_files(run: NightlyRunSettings, inbox_fd: int, *, now: float | None = None) -> list[str]:
    """Names directly in the inbox with an accepted suffix, not hidden, not a folder, and
    unchanged for ``min_age_s`` (a file still being copied in is left for the next run).
    Links and other non-files are listed too: they are refused with a reason, not skipped."""
    cutoff = (now or time.time()) - run.min_age_s
    suffixes = {s.lower() for s in run.suffixes}
    names = []
    for name in os.listdir(inbox_fd):
        if name.startswith(".") or os.path.splitext(name)[1].lower() not in suffixes:
            continue
        try:
            st = os.stat(name, dir_fd=inbox_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # moved away since the listing
        if not stat.S_ISDIR(st.st_mode) and st.st_mtime <= cutoff:
            names.append(name)
    return sorted(names)


def run_nightly(*, name: str, settings: Settings) -> NightlyReport:
    """One run: the same code path for beat and for a run started by hand or by a test."""
    run = find_run(settings, name)
    report = NightlyReport()
    inbox_fd = open_inbox(run)
    try:
        names = inbox_files(run, inbox_fd)
        if not names:
            logger.info("nightly run %s: no new files", run.name)
            return report
        with (
            session_scope() as session,
            tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool,
        ):
            tenant = session.exec(select(Tenant).where(Tenant.name == run.tenant)).first()
            if tenant is None:
                raise ValueError(f"nightly run {run.name}: no tenant named {run.tenant!r}")
            claimed: list[int] = []
            for file_name in names:
                line, row_id = _take_file(
                    session, run, tenant, settings, inbox_fd, file_name, report
                )
                if row_id is not None:
                    claimed.append(row_id)
                if line is not None:
                    spool.write(line)
            if claimed or report.rejected:  # a run of bad files only still sends its report
                report.batch_id = _submit(session, run, tenant, spool, report, claimed, settings)
    finally:
        os.close(inbox_fd)
    _archive(run, report)
    logger.info(
        "nightly run %s: batch %s with %d files; %d rejected, %d seen before, "
        "%d changed since read and left for the next run",
        run.name,
        report.batch_id,
        len(report.submitted),
        len(report.rejected),
        len(report.duplicates),
        len(report.left_in_inbox),
    )
    return report


def _take_file(
    session: Session,
    run: NightlyRunSettings,
    tenant: Tenant,
    settings: Settings,
    inbox_fd: int,
    name: str,
    report: NightlyReport,
) -> tuple[bytes | None, int | None]:
    """Read, claim and check one file; returns its batch line (None when it is not an item)
    and its ``inbox_files`` row id (None when its content was not claimed)."""
    shown = shown_name(name)
    try:
        _check_name(inbox_fd, name)
        data, seen = read_capped(inbox_fd, name, run.max_file_bytes)
    except FileRefused as exc:
        report.rejected.append({"file": shown, "error": exc.message})
        if exc.seen is not None:
            report.handled.append(Handled(name, "rejected", exc.seen))
        return None, None
    except FileNotFoundError:
        return None, None  # gone since the listing (a concurrent run, or its sender)
    assert seen.sha256 is not None
    row_id = _claim(session, tenant.id, run.name, seen.sha256, name)
    if row_id is None:
        report.duplicates.append(name)
        report.handled.append(Handled(name, "duplicates", seen))
        return None, None
    try:
        line = _item_line(run, tenant, name, data, settings)
    except FileRefused as exc:
        report.rejected.append({"file": shown, "error": exc.message})
        report.handled.append(Handled(name, "rejected", seen))
        return None, row_id
    report.submitted.append(name)
    report.handled.append(Handled(name, "", seen))
    return line, row_id


def _check_name(inbox_fd: int, name: str) -> None:
    """The name becomes the item's custom_id and is stored: it must be UTF-8 and short."""
    problem = None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        problem = "the file name is not valid UTF-8: rename the file"
    if problem is None and len(name) > MAX_NAME_CHARS:
        problem = f"the file name is longer than {MAX_NAME_CHARS} characters: rename the file"
    if problem is not None:
        raise FileRefused(
            problem, SeenFile.of(os.stat(name, dir_fd=inbox_fd, follow_symlinks=False))
        )


def _claim(session: Session, tenant_id: str, source: str, digest: str, name: str) -> int | None:
    """Record the file's hash; None when a run already took a file with this content."""
    row = session.execute(
        insert(InboxFile)
        .values(tenant_id=tenant_id, source=source, content_hash=digest, file_name=name)
        .on_conflict_do_nothing(constraint="uq_inbox_files_hash")
        .returning(col(InboxFile.id))
    ).first()
    return None if row is None else int(row[0])


def _item_line(
    run: NightlyRunSettings, tenant: Tenant, name: str, data: bytes, settings: Settings
) -> bytes:
    """The file as a batch line; raises ``FileRefused`` saying why it cannot be an item."""
    try:
        document = data.decode("utf-8")  # a UTF-8 byte order mark is kept, as it always was
    except UnicodeDecodeError as exc:
        raise FileRefused(NOT_UTF8) from exc
    if "\x00" in document:
        raise FileRefused(HOLDS_NUL)
    try:
        item = BatchItem(custom_id=name, document=document, **run.job_options())
        check_item(
            item,
            priority=settings.limits.batch_priority,
            tenant_name=tenant.name,
            settings=settings,
        )
    except ValidationError as exc:
        raise FileRefused(_problems(exc)) from exc
    except PonderError as exc:
        raise FileRefused(exc.message) from exc
    # ensure_ascii=False: at most 6 bytes a character, so the line fits the batch line limit
    line = (json.dumps(item.model_dump(exclude_none=True), ensure_ascii=False) + "\n").encode()
    if len(line) > settings.limits.max_request_bytes:
        raise FileRefused(
            f"longer than a batch item may be ({settings.limits.max_request_bytes} bytes as "
            "JSON, limits.max_request_bytes): split the document"
        )
    return line


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors by field, without the input (it may be PHI)."""
    return "; ".join(validation_problems(exc, whole="item"))


def _submit(
    session: Session,
    run: NightlyRunSettings,
    tenant: Tenant,
    spool: tempfile.SpooledTemporaryFile[bytes],
    report: NightlyReport,
    claimed: list[int],
    settings: Settings,
) -> str:
    options = BatchOptions(
        name=run.name,
        webhook_url=run.webhook_url,
        webhook_endpoint_id=run.webhook_endpoint_id,
        email=run.email,
        metadata={"nightly_run": run.name, "inbox_run_at": utcnow().isoformat()},
    )
    rejected_files: list[dict[str, Any]] = [dict(r) for r in report.rejected]
    batch = new_batch(
        session=session,
        tenant=tenant,
        options=options,
        settings=settings,
        source="nightly",
        rejected_files=rejected_files or None,
    )
    session.flush()
    insert_items(
        session=session, batch=batch, upload=spool, tenant_name=tenant.name, settings=settings
    )
    for row_id in claimed:
        inbox_row = session.get(InboxFile, row_id)
        assert inbox_row is not None
        inbox_row.batch_id = batch.id
        session.add(inbox_row)
    if batch.item_count == 0:  # every new file was rejected: the report goes out now
        session.flush()
        close_batch_if_ended(session=session, batch_id=batch.id, settings=settings)
    return batch.id


def _archive(run: NightlyRunSettings, report: NightlyReport) -> None:
    """Move what this run handled out of the inbox: ``<archive>/<time>-<batch>/`` holds the
    submitted files, with ``rejected/`` and ``duplicates/`` below it. A file replaced or
    changed since it was read stays in the inbox, so the next run reads what is there now."""
    folder = run.archive_dir / f"{utcnow():%Y%m%dT%H%M%SZ}-{report.batch_id or 'no-batch'}"
    inbox_fd = open_inbox(run)
    try:
        for handled in report.handled:
            target = (
                folder / handled.group / handled.name if handled.group else folder / handled.name
            )
            if not move_if_unchanged(run, inbox_fd, handled.name, handled.seen, target):
                report.left_in_inbox.append(shown_name(handled.name))
    finally:
        os.close(inbox_fd)
