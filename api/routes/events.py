"""Live progress as Server-Sent Events: a job's trace events as they are written, a batch's
counts as they change, each stream closed after its terminal ``end`` event. A client that
reconnects with ``Last-Event-ID`` is replayed what it missed from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import SessionDep, SettingsDep, TenantDep
from api.schemas import ErrorPublic
from ponder.batches import service as batches
from ponder.config import LiveSettings
from ponder.errors import PonderError
from ponder.jobs import live
from ponder.jobs import service as jobs

router = APIRouter(tags=["events"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 403, 404)
}
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="Resume after this event id (an SSE client sends it when it reconnects).",
    ),
]


class BadLastEventId(PonderError):
    status_code = 400


def _resume_after(last_event_id: str | None, what: str) -> int | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    value = last_event_id.strip()
    if not value.isdigit():
        raise BadLastEventId(
            f"Last-Event-ID must be a whole number, the id of the last event received ({what}); "
            "omit the header to start from the beginning"
        )
    return int(value)


def _sse(event: str, data: Any, *, id: int | None = None) -> str:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


PING = ": ping\n\n"


class _Pacer:
    """When a stream reads PostgreSQL again, and when it owes the client a heartbeat."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.last_sent = time.monotonic()
        self.close_at = self.last_sent + settings.max_stream_s

    @property
    def expired(self) -> bool:
        """Open for ``max_stream_s``: time to close, the client resumes where it was."""
        return time.monotonic() >= self.close_at

    def sent(self) -> None:
        self.last_sent = time.monotonic()

    async def wait(self, woken: asyncio.Event | None = None) -> str | None:
        """Until a wake-up, the next poll or the next heartbeat; the ping to send, if due."""
        ping_at = self.last_sent + self.settings.heartbeat_s
        wake_at = min(ping_at, self.close_at, time.monotonic() + self.settings.poll_s)
        timeout = max(0.0, wake_at - time.monotonic())
        if woken is None:
            await asyncio.sleep(timeout)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await woken.wait()
        if time.monotonic() >= ping_at:
            self.sent()
            return PING
        return None


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=_HEADERS)


_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events, closed after the terminal ``end`` event.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **_ERRORS,
}


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses=_STREAM_DOC,
)
async def job_events(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The job's trace events as they are written: ``id`` is the event's ``seq``, ``event``
    its kind, ``data`` the step as ``/trace`` shows it (``seq``, ``attempt``, ``kind``,
    ``data``, ``at``); after a ``samples`` step, one ``verdict`` event per candidate (the
    step's id on the group's last event). Then ``event: end`` with the job's final status, and
    the stream closes. ``: ping`` comments keep it open; ``Last-Event-ID`` replays the events
    after that seq. A stream open for ``live.max_stream_s`` closes without ``end``: reconnect
    to resume."""
    after = _resume_after(last_event_id, "a trace event's seq")
    await run_in_threadpool(jobs.get_job, session=session, tenant=tenant, job_id=job_id)
    return _stream(_job_stream(tenant.id, job_id, after or 0, settings.live))


def _verdicts(step: Any) -> list[tuple[str, dict[str, Any]]]:
    """After a ``samples`` step, one ``verdict`` event per candidate it verified: whether it
    passed every required check, its score and the checks it failed (ids and figures, never
    text). The step's id goes on the last event of the group only, so a client cut off inside
    the group resumes before it and gets the whole group again: never a verdict lost."""
    if step.kind != "samples":
        return []
    return [
        ("verdict", {"seq": step.seq, "step": step.data.get("step"), **candidate})
        for candidate in step.data.get("candidates", [])
    ]


async def _job_stream(
    tenant_id: str, job_id: str, after: int, settings: LiveSettings
) -> AsyncIterator[str]:
    pacer = _Pacer(settings)
    async with live.trace_wakeups(job_id) as woken:
        while True:
            woken.clear()
            progress = await run_in_threadpool(
                live.read_job_progress, tenant_id=tenant_id, job_id=job_id, after=after
            )
            if progress is None:  # the job went away under the stream
                return
            for step in progress.steps:
                group = [(step.kind, step.model_dump(mode="json")), *_verdicts(step)]
                for position, (event, data) in enumerate(group):
                    last = position == len(group) - 1
                    yield _sse(event, data, id=step.seq if last else None)
                after = step.seq
                pacer.sent()
            if progress.ended:
                yield _sse("end", {"job_id": job_id, "status": progress.status})
                return
            if pacer.expired:
                return
            ping = await pacer.wait(woken)
            if ping:
                yield ping


@router.get(
    "/v1/batches/{batch_id}/events",
    response_class=StreamingResponse,
    responses=_STREAM_DOC,
)
async def batch_events(
    batch_id: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The batch's counts each time they change (``event: counts``; ``data``: ``status``,
    ``round``, ``total``, ``counts`` per state), then ``event: end`` with the same fields once
    the batch ends. The ``id`` grows with every item's move, so after a reconnect with
    ``Last-Event-ID`` the current counts are sent only if they moved since."""
    after = _resume_after(last_event_id, "a counts event's id")
    await run_in_threadpool(batches.get_batch, session=session, tenant=tenant, batch_id=batch_id)
    return _stream(_batch_stream(tenant.id, batch_id, after, settings.live))


async def _batch_stream(
    tenant_id: str, batch_id: str, after: int | None, settings: LiveSettings
) -> AsyncIterator[str]:
    # Polled: the counts move with every item's state, which writes no trace event.
    pacer = _Pacer(settings)
    while True:
        progress = await run_in_threadpool(
            live.read_batch_progress, tenant_id=tenant_id, batch_id=batch_id
        )
        if progress is None:
            return
        if after is None or progress.event_id > after:
            yield _sse("counts", progress.public(batch_id), id=progress.event_id)
            after = progress.event_id
            pacer.sent()
        if progress.ended:
            yield _sse("end", progress.public(batch_id))
            return
        if pacer.expired:
            return
        ping = await pacer.wait()
        if ping:
            yield ping
