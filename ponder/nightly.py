"""Nightly runs: beat sends ``ponder.nightly_run`` with a configured run's name (see
``ponder.queue.nightly_schedule``); each file new in the run's inbox becomes an item of one
batch, and the batch report goes out when its items have ended.

A file's SHA-256 is recorded (per tenant and run) in the transaction that creates the batch,
so a file is submitted at most once, even if it is dropped into the inbox again or moving it to
the archive failed. Files are moved only after that commit."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from ponder.batch_input import BatchItem, check_item
from ponder.batch_state import close_batch_if_ended
from ponder.batches import BatchOptions, insert_items, new_batch
from ponder.config import NightlyRunSettings, Settings
from ponder.db import session_scope
from ponder.errors import PonderError
from ponder.models import InboxFile, Tenant, utcnow

logger = logging.getLogger(__name__)

SPOOL_IN_MEMORY_BYTES = 4 * 1024 * 1024


@dataclass
class NightlyReport:
    batch_id: str | None = None
    submitted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def find_run(settings: Settings, name: str) -> NightlyRunSettings:
    for run in settings.nightly:
        if run.name == name:
            return run
    raise ValueError(f"no nightly run named {name!r} in the settings")


def inbox_files(run: NightlyRunSettings, *, now: float | None = None) -> list[Path]:
    """Regular files directly in the inbox with an accepted suffix, not hidden, and unchanged for
    ``min_age_s`` (a file still being copied in is left for the next run)."""
    if not run.inbox.is_dir():
        raise FileNotFoundError(f"nightly run {run.name}: inbox {run.inbox} is not a directory")
    cutoff = (now or time.time()) - run.min_age_s
    suffixes = {s.lower() for s in run.suffixes}
    return sorted(
        path
        for path in run.inbox.iterdir()
        if path.is_file()
        and not path.is_symlink()
        and not path.name.startswith(".")
        and path.suffix.lower() in suffixes
        and path.stat().st_mtime <= cutoff
    )


def run_nightly(*, name: str, settings: Settings) -> NightlyReport:
    """One run: the same code path for beat and for a run started by hand or by a test."""
    run = find_run(settings, name)
    report = NightlyReport()
    files = inbox_files(run)
    if not files:
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
        rejected_files: list[dict[str, str]] = []
        for path in files:
            data = path.read_bytes()
            row_id = _claim(session, tenant.id, run.name, hashlib.sha256(data).hexdigest(), path)
            if row_id is None:
                report.duplicates.append(path.name)
                continue
            claimed.append(row_id)
            try:
                line = _item_line(run, tenant, path, data, settings)
            except (PonderError, UnicodeDecodeError) as exc:
                error = exc.message if isinstance(exc, PonderError) else "not UTF-8 text"
                rejected_files.append({"file": path.name, "error": error})
                report.rejected.append(path.name)
                continue
            spool.write(line)
            report.submitted.append(path.name)
        if claimed:
            report.batch_id = _submit(
                session, run, tenant, spool, rejected_files, claimed, settings
            )
    _archive(run, report)
    logger.info(
        "nightly run %s: batch %s with %d files; %d rejected, %d seen before",
        run.name,
        report.batch_id,
        len(report.submitted),
        len(report.rejected),
        len(report.duplicates),
    )
    return report


def _claim(session: Session, tenant_id: str, source: str, digest: str, path: Path) -> int | None:
    """Record the file's hash; None when a run already took a file with this content."""
    row = session.execute(
        insert(InboxFile)
        .values(tenant_id=tenant_id, source=source, content_hash=digest, file_name=path.name)
        .on_conflict_do_nothing(constraint="uq_inbox_files_hash")
        .returning(col(InboxFile.id))
    ).first()
    return None if row is None else int(row[0])


def _item_line(
    run: NightlyRunSettings, tenant: Tenant, path: Path, data: bytes, settings: Settings
) -> bytes:
    item = BatchItem(
        custom_id=path.name,
        task=run.task,
        document=data.decode("utf-8"),
        strategy=run.strategy,
        n=run.n,
        params=run.params,
    )
    check_item(
        item, priority=settings.limits.batch_priority, tenant_name=tenant.name, settings=settings
    )
    return (json.dumps(item.model_dump(exclude_none=True)) + "\n").encode()


def _submit(
    session: Session,
    run: NightlyRunSettings,
    tenant: Tenant,
    spool: tempfile.SpooledTemporaryFile[bytes],
    rejected_files: list[dict[str, str]],
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
    submitted files, with ``rejected/`` and ``duplicates/`` below it."""
    folder = run.archive_dir / f"{utcnow():%Y%m%dT%H%M%SZ}-{report.batch_id or 'no-batch'}"
    groups = {"": report.submitted, "rejected": report.rejected, "duplicates": report.duplicates}
    for sub, names in groups.items():
        for name in names:
            target = folder / sub / name if sub else folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.move(run.inbox / name, target)
            except FileNotFoundError:
                pass  # a concurrent run moved it; its hash is recorded either way
