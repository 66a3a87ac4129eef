"""The batch service: create from a JSONL upload (every line checked first, then the items
inserted in chunks in the caller's transaction and dispatched after commit), read with counts,
cancel, retry the failed items (results: ``ponder.batches.results``). No commits here."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.batches.state import FAILED, close_batch_if_ended, count_items_of, derive_status
from ponder.batches.upload import check_upload, iter_lines, parse_line
from ponder.config import Settings, get_settings
from ponder.db import after_commit
from ponder.errors import Conflict, InvalidRequest, NotFound
from ponder.idempotency import create_once
from ponder.jobs import state as job_state
from ponder.jobs.knobs import knobs_store
from ponder.jobs.service import capped_priority, frozen_config
from ponder.models import Batch, Job, JobStatus, Tenant, new_id, utcnow
from ponder.notify.endpoints import usable_endpoint_id
from ponder.notify.webhooks import UnsafeWebhookURL, check_webhook_url
from ponder.pages import newest_first
from ponder.queue import send_dispatch_batch, send_run_job
from ponder.scoping import readable_batches

logger = logging.getLogger(__name__)

INSERT_CHUNK = 500
DISPATCH_CHUNK = 1000


@dataclass(frozen=True)
class BatchOptions:
    """What applies to the whole batch: its name, its items' priority, where its report goes."""

    name: str | None = None
    priority: int | None = None
    """None: ``limits.batch_priority``."""
    webhook_url: str | None = None
    webhook_endpoint_id: str | None = None
    email: str | None = None
    metadata: dict[str, Any] | None = None
    complete_by: datetime | None = None
    """The batch's window: every item's ``complete_by``."""
    cache: str | None = None
    """The result cache of every item whose line does not say ``cache``."""


@dataclass(frozen=True)
class BatchSummary:
    batch: Batch
    status: str
    counts: dict[str, int]
    started_at: datetime | None

    @property
    def ended(self) -> bool:
        return self.batch.finished_at is not None


def create_batch(
    *,
    session: Session,
    tenant: Tenant,
    upload: IO[bytes],
    options: BatchOptions,
    idempotency_key: str | None,
    settings: Settings,
) -> tuple[Batch, bool]:
    """Returns (batch, created). An invalid line rejects the whole upload (``InvalidRequest``
    listing every bad line); then nothing is written and nothing queued."""
    priority = settings.limits.batch_priority if options.priority is None else options.priority
    check = check_upload(upload, priority=priority, tenant_name=tenant.name, settings=settings)
    options_json = json.dumps(asdict(options), sort_keys=True, default=str)
    fingerprint = hashlib.sha256(f"{check.sha256}|{options_json}".encode()).hexdigest()
    batch, created = create_once(
        session=session,
        key=idempotency_key,
        fingerprint=fingerprint,
        same_key=readable_batches(tenant.id).where(col(Batch.idempotency_key) == idempotency_key),
        create=functools.partial(
            new_batch, session=session, tenant=tenant, options=options, settings=settings
        ),
        what="batch",
    )
    if not created:
        return batch, False
    session.flush()  # the items' rows refer to the batch's
    insert_items(
        session=session,
        batch=batch,
        upload=upload,
        tenant_name=tenant.name,
        settings=settings,
        cache=options.cache,
    )
    logger.info("batch %s created with %d items", batch.id, batch.item_count)
    return batch, True


def new_batch(
    *,
    session: Session,
    tenant: Tenant,
    options: BatchOptions,
    settings: Settings,
    source: str = "api",
    rejected_files: list[dict[str, Any]] | None = None,
) -> Batch:
    if options.webhook_url:
        try:
            check_webhook_url(options.webhook_url, allow_hosts=settings.notify.webhook_allow_hosts)
        except UnsafeWebhookURL as exc:
            raise InvalidRequest(f"webhook_url refused: {exc}") from exc
    wanted = settings.limits.batch_priority if options.priority is None else options.priority
    caps = knobs_store(settings.knobs_file).current().caps_for(tenant.name)
    batch = Batch(
        tenant_id=tenant.id,
        source=source,
        name=options.name,
        # Its items' rows and broker messages carry it: capped like a single job's.
        priority=capped_priority(wanted, caps.highest_priority),
        webhook_url=options.webhook_url,
        webhook_endpoint_id=usable_endpoint_id(session, tenant.id, options.webhook_endpoint_id),
        email=options.email,
        metadata_=options.metadata,
        rejected_files=rejected_files,
        complete_by=options.complete_by,
    )
    session.add(batch)
    return batch


def insert_items(
    *,
    session: Session,
    batch: Batch,
    upload: IO[bytes],
    tenant_name: str,
    settings: Settings,
    cache: str | None = None,
) -> None:
    """Insert the (already checked) lines as jobs, ``INSERT_CHUNK`` rows at a time, and
    dispatch them after commit. The line number is the item's ``batch_index``; ``cache`` is
    the batch's, for the lines that do not say theirs."""
    max_line = settings.limits.max_request_bytes
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for number, raw in iter_lines(upload, max_line_bytes=max_line):
        item = parse_line(raw, max_line_bytes=max_line)
        request = item.job_request(priority=batch.priority)
        if request.cache is None and cache is not None:
            request = request.model_copy(update={"cache": cache})
        job_id = new_id()  # before the configuration: an A/B arm is chosen from it
        job = Job(
            id=job_id,
            tenant_id=batch.tenant_id,
            task=item.task,
            priority=batch.priority,
            request_hash=request.fingerprint(),
            config=frozen_config(request, settings, tenant_name, job_id=job_id),
            document=item.document,
            metadata_=item.metadata,
            batch_id=batch.id,
            batch_index=number,
            custom_id=item.custom_id,
            complete_by=batch.complete_by,
            enqueued_at=now,
        )
        rows.append(job.model_dump())
        batch.item_count += 1
        if len(rows) == INSERT_CHUNK:
            session.execute(sa.insert(Job), rows)
            rows = []
    if rows:
        session.execute(sa.insert(Job), rows)
    session.add(batch)
    after_commit(session, functools.partial(send_dispatch_batch, batch.id))


def dispatch(*, session: Session, batch_id: str) -> int:
    """Send every queued item of the batch to the broker (each to its model's queue),
    streaming the ids."""
    registry = get_settings().registry
    query = (
        sa.select(col(Job.id), col(Job.priority), Job.config["model_used"].astext)
        .where(col(Job.batch_id) == batch_id, col(Job.status) == JobStatus.queued.value)
        .order_by(col(Job.batch_index))
        .execution_options(yield_per=DISPATCH_CHUNK)
    )
    sent = 0
    for job_id, priority, model in session.execute(query):
        send_run_job(job_id, priority, queue=registry.queue(model))
        sent += 1
    logger.info("batch %s: %d items sent to the workers", batch_id, sent)
    return sent


def get_batch(*, session: Session, tenant: Tenant, batch_id: str) -> Batch:
    batch = session.exec(readable_batches(tenant.id).where(col(Batch.id) == batch_id)).first()
    if batch is None:
        raise NotFound(f"no batch {batch_id}")  # another tenant's batch is indistinguishable
    return batch


def summarize(session: Session, batch: Batch) -> BatchSummary:
    return summarize_all(session, [batch])[0]


def summarize_all(session: Session, batches: list[Batch]) -> list[BatchSummary]:
    """Each batch with its counts, from one grouped query for all of them (a page of a list)."""
    found = count_items_of(session, [b.id for b in batches])
    summaries = []
    for batch in batches:
        items = found[batch.id]
        status = derive_status(batch, items.counts)
        summaries.append(BatchSummary(batch, status, items.counts, items.started_at))
    return summaries


def list_batches(
    *, session: Session, tenant: Tenant, limit: int, cursor: str | None = None
) -> tuple[list[Batch], str | None]:
    query = readable_batches(tenant.id)
    return newest_first(session, query, Batch, limit=limit, cursor=cursor)


def cancel_batch(*, session: Session, tenant: Tenant, batch_id: str, settings: Settings) -> Batch:
    """Queued items are cancelled now; running items finish. Items are locked before the batch
    row (the order every item's end takes), so the two never deadlock."""
    batch = get_batch(session=session, tenant=tenant, batch_id=batch_id)
    if batch.finished_at is not None:
        raise Conflict(f"batch {batch.id} already ended; nothing to cancel")
    now = utcnow()
    session.execute(
        job_state.bulk_move(
            col(Job.batch_id) == batch.id,
            col(Job.status) == JobStatus.queued.value,
            to=JobStatus.cancelled,
            finished_at=now,
            error="cancelled with its batch before it started",
        )
    )
    batch.cancel_requested_at = batch.cancel_requested_at or now
    session.add(batch)
    close_batch_if_ended(session=session, batch_id=batch.id, settings=settings)
    logger.info("batch %s cancelled", batch.id)
    return batch


def retry_failed(*, session: Session, tenant: Tenant, batch_id: str) -> tuple[Batch, int]:
    """Queue the failed items of an ended batch again (a new round with its own report); every
    other item keeps its outcome. Returns (batch, items queued)."""
    batch = get_batch(session=session, tenant=tenant, batch_id=batch_id)
    if batch.deleted_at is not None:
        raise Conflict(f"batch {batch.id} was deleted: its documents are gone, nothing to retry")
    if batch.finished_at is None:
        raise Conflict(
            f"batch {batch.id} is still running; retry its failed items once it has ended"
        )
    retried = session.execute(
        job_state.bulk_move(
            col(Job.batch_id) == batch.id,
            col(Job.status).in_(FAILED),
            # A purged item's document is gone: running it again would answer an empty note.
            col(Job.purged_at).is_(None),
            to=JobStatus.queued,
            attempts=0,  # the retry gets the full attempt budget again
            crowd_deaths=0,  # charged = attempts - crowd deaths: both start again
            lone_deaths=0,  # (quarantined_at stays: a job convicted once runs alone again)
            error=None,
            result=None,
            selected_candidate_id=None,
            started_at=None,
            finished_at=None,
            cancel_requested=False,
            lease_owner=None,
            lease_expires_at=None,
            enqueued_at=utcnow(),
        ).returning(col(Job.id))
    ).all()
    if not retried:
        raise Conflict(
            f"batch {batch.id} has no failed items to retry (items whose content was purged "
            "by retention cannot be retried)"
        )
    session.refresh(batch, with_for_update=True)
    batch.finished_at = None
    batch.cancel_requested_at = None
    batch.round += 1
    session.add(batch)
    after_commit(session, functools.partial(send_dispatch_batch, batch.id))
    logger.info(
        "batch %s round %d: %d failed items queued again", batch.id, batch.round, len(retried)
    )
    return batch, len(retried)
