"""Live progress over Server-Sent Events (api/routes/events.py) against a real uvicorn server:
a job's trace events while the real worker runs it, resumed with ``Last-Event-ID``; heartbeats;
a batch's counts; tenant scoping; and ``ponder watch`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from ponder.cli.devservers import free_port
from ponder.config import get_settings
from ponder.db import get_engine
from tests.conftest import wait_for_status

ENDED = {"succeeded", "needs_review", "failed", "cancelled", "expired"}
HEARTBEAT_S = 0.3


def note() -> str:
    """A medication note of its own, so no earlier job's result answers it from the cache."""
    return (
        f"Clinic follow-up {uuid.uuid4().hex[:8]}.\n"
        "Medications: metoprolol 50 mg by mouth twice daily."
    )


@pytest.fixture
def server(database: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API over real HTTP (a test client buffers a stream until it ends), with a short
    heartbeat and poll."""
    import uvicorn

    from api.main import app

    monkeypatch.setenv("PONDER_LIVE__HEARTBEAT_S", str(HEARTBEAT_S))
    monkeypatch.setenv("PONDER_LIVE__POLL_S", "0.2")
    get_settings.cache_clear()
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    get_settings.cache_clear()


@dataclass
class Event:
    id: int | None
    event: str
    data: dict


def read_sse(
    response: httpx.Response, *, on_ping: Callable[[int], None] | None = None
) -> Iterator[Event]:
    """The events of a stream, parsed here (not with the CLI's parser); ``on_ping`` is told
    how many heartbeat comments came so far."""
    fields: dict[str, str] = {}
    pings = 0
    for line in response.iter_lines():
        if line == ": ping":
            pings += 1
            if on_ping is not None:
                on_ping(pings)
        elif line.startswith(":"):
            continue
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            raw_id = fields.get("id")
            yield Event(
                int(raw_id) if raw_id else None, fields["event"], json.loads(fields["data"])
            )
            fields = {}


def stream(client: httpx.Client, path: str, last_event_id: int | str | None = None):
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    return client.stream("GET", path, headers=headers)


def table_seqs(job_id: str) -> list[int]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text("select seq from trace_events where job_id = :j order by seq"), {"j": job_id}
        )
        return [r.seq for r in rows]


def submit(client: httpx.Client, **extra: object) -> str:
    body = {"task": "medrec_extraction", "document": note(), **extra}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def client(server: str, tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers=tenant.headers, timeout=60) as c:
        yield c


def test_job_events_while_the_worker_runs_then_resume_after_a_disconnect(client, worker):
    job_id = submit(client, strategy="best_of_n", n=2)
    seen: list[Event] = []
    with stream(client, f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in read_sse(response):
            assert event.event != "end", "the job ended before a sample event was read"
            seen.append(event)
            if event.event == "verdict":
                break  # disconnect mid-job, with events still to come
    samples = next(e for e in reversed(seen) if e.event == "samples")
    assert samples.data["kind"] == "samples"
    assert samples.data["data"]["candidates"], "a samples event lists its candidates"
    verdict = seen[-1]  # each candidate's verdict follows its samples event
    assert verdict.data["seq"] == samples.data["seq"]
    assert {"passed_required", "score", "failing", "candidate_id"} <= verdict.data.keys()
    assert verdict.data["candidate_id"] == samples.data["data"]["candidates"][0]["candidate_id"]
    # The group's id is on its last event (best_of_n n=2: two verdicts); this client was cut
    # off after the first, so it resumes before the group and gets all of it again.
    assert samples.id is None and verdict.id is None

    job = wait_for_status(job_id, ENDED)  # what follows is written while no one listens
    seen_ids = [e.id for e in seen if e.id is not None]
    last_seen = seen_ids[-1] if seen_ids else 0
    with stream(client, f"/v1/jobs/{job_id}/events", last_event_id=last_seen) as response:
        resumed = list(read_sse(response))

    seqs = table_seqs(job_id)
    missed = [s for s in seqs if s > last_seen]
    assert [e.id for e in resumed[:-1] if e.id is not None] == missed  # exactly the missed
    assert seen_ids + missed == seqs
    replayed = [e for e in resumed if e.event == "verdict" and e.data["seq"] == samples.data["seq"]]
    assert len(replayed) == len(samples.data["data"]["candidates"])  # no verdict lost
    kinds = [e.event for e in seen + resumed]
    assert kinds.index("samples") < kinds.index("selection") < kinds.index("end")
    selection = next(e for e in resumed if e.event == "selection").data["data"]
    assert selection["status"] in {"succeeded", "needs_review"}
    assert selection["ranking"][0]["score"] is not None  # the verdict: pass/fail and scores
    assert resumed[-1].event == "end" and resumed[-1].id is None
    assert resumed[-1].data == {"job_id": job_id, "status": job["status"]}


def test_a_queued_job_streams_heartbeats_then_ends_when_cancelled(client, isolated_broker):
    job_id = submit(client)  # the isolated broker has no worker: it stays queued

    def cancel_after_two(pings: int) -> None:
        if pings == 2:
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

    started = time.monotonic()
    with stream(client, f"/v1/jobs/{job_id}/events") as response:
        events = list(read_sse(response, on_ping=cancel_after_two))
    assert time.monotonic() - started >= 2 * HEARTBEAT_S
    assert events[-1].event == "end"
    assert events[-1].data == {"job_id": job_id, "status": "cancelled"}
    assert [e.id for e in events[:-1]] == table_seqs(job_id)


def test_resuming_an_ended_job_after_its_last_event_sends_only_the_end(client, isolated_broker):
    job_id = submit(client)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    last = max(table_seqs(job_id), default=0)
    with stream(client, f"/v1/jobs/{job_id}/events", last_event_id=last) as response:
        events = list(read_sse(response))
    assert [(e.event, e.data["status"]) for e in events] == [("end", "cancelled")]


def test_a_trace_event_wakes_the_stream_at_once_not_at_the_next_poll(
    client, isolated_broker, monkeypatch
):
    from ponder.db import session_scope
    from ponder.jobs.events import append_job_event
    from ponder.models import Job

    monkeypatch.setenv("PONDER_LIVE__POLL_S", "30")  # read per request: this stream's pace
    monkeypatch.setenv("PONDER_LIVE__HEARTBEAT_S", "30")
    get_settings.cache_clear()
    job_id = submit(client)
    with stream(client, f"/v1/jobs/{job_id}/events") as response:
        time.sleep(0.5)  # the stream has read the table and waits
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job is not None
            append_job_event(session, job, "note", {"count": 1})
        written = time.monotonic()
        first = next(read_sse(response))
    assert time.monotonic() - written < 5  # NOTIFY, not the 30 s poll
    assert (first.event, first.id, first.data["data"]) == (
        "note",
        table_seqs(job_id)[-1],
        {"count": 1},
    )


def test_a_stream_open_past_its_limit_closes_without_end_and_resumes(
    client, isolated_broker, monkeypatch
):
    monkeypatch.setenv("PONDER_LIVE__MAX_STREAM_S", "1")
    get_settings.cache_clear()
    job_id = submit(client)
    started = time.monotonic()
    with stream(client, f"/v1/jobs/{job_id}/events") as response:
        first = list(read_sse(response))
    assert 1 <= time.monotonic() - started < 10
    assert "end" not in [e.event for e in first]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    last = first[-1].id if first else None
    with stream(client, f"/v1/jobs/{job_id}/events", last_event_id=last) as response:
        rest = list(read_sse(response))
    assert [e.id for e in first + rest[:-1]] == table_seqs(job_id)
    assert (rest[-1].event, rest[-1].data["status"]) == ("end", "cancelled")


def submit_batch(client: httpx.Client, items: int) -> str:
    lines = [
        json.dumps({"custom_id": f"item-{i}", "task": "medrec_extraction", "document": note()})
        for i in range(items)
    ]
    response = client.post(
        "/v1/batches",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/jsonl"},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_batch_counts_stream_until_the_batch_ends_and_resume_by_id(client, isolated_broker):
    batch_id = submit_batch(client, items=2)
    events: list[Event] = []
    with stream(client, f"/v1/batches/{batch_id}/events") as response:
        for event in read_sse(response):
            events.append(event)
            if len(events) == 1:  # the counts as they were: cancel, and watch them move
                assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
    first, moved, end = events
    assert (first.event, first.id, first.data["status"]) == ("counts", 0, "queued")
    assert first.data["counts"]["queued"] == 2 and first.data["total"] == 2
    assert (moved.event, moved.data["counts"]["cancelled"]) == ("counts", 2)
    assert moved.id is not None and first.id is not None and moved.id > first.id
    assert (end.event, end.id, end.data["status"]) == ("end", None, "cancelled")

    with stream(client, f"/v1/batches/{batch_id}/events", last_event_id=moved.id) as response:
        assert [e.event for e in read_sse(response)] == ["end"]  # nothing moved since
    with stream(client, f"/v1/batches/{batch_id}/events", last_event_id=first.id) as response:
        again = list(read_sse(response))
    assert [(e.event, e.id) for e in again] == [("counts", moved.id), ("end", None)]


@pytest.mark.parametrize("kind", ["jobs", "batches"])
def test_another_tenants_job_or_batch_is_a_404(server, client, other_tenant, isolated_broker, kind):
    own = submit(client) if kind == "jobs" else submit_batch(client, items=1)
    with httpx.Client(base_url=server, headers=other_tenant.headers, timeout=30) as other:
        response = other.get(f"/v1/{kind}/{own}/events")
    assert response.status_code == 404
    assert own in response.json()["error"]


@pytest.mark.parametrize("kind", ["jobs", "batches"])
def test_an_unknown_id_is_a_404(client, kind):
    response = client.get(f"/v1/{kind}/no-such-id/events")
    assert response.status_code == 404
    assert "no-such-id" in response.json()["error"]


@pytest.mark.parametrize("kind", ["jobs", "batches"])
@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "7; drop"])
def test_a_last_event_id_that_is_not_a_whole_number_is_a_400(client, isolated_broker, kind, bad):
    own = submit(client) if kind == "jobs" else submit_batch(client, items=1)
    response = client.get(f"/v1/{kind}/{own}/events", headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert "Last-Event-ID must be a whole number" in response.json()["error"]


def test_ponder_watch_prints_each_event_and_exits_with_the_jobs_status(
    server, client, tenant, worker
):
    job_id = submit(client, strategy="best_of_n", n=2)
    env = {**os.environ, "PONDER_API_URL": server, "PONDER_API_KEY": tenant.key}
    watched = subprocess.run(
        [sys.executable, "-c", "from ponder.cli.commands import main; main()", "watch", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    job = wait_for_status(job_id, ENDED, timeout_s=5)
    lines = [line.split("\t") for line in watched.stdout.splitlines()]
    assert [int(line[0]) for line in lines[:-1]] == table_seqs(job_id), watched.stderr
    kinds = [line[1] for line in lines[:-1]]
    assert "samples" in kinds and "selection" in kinds
    samples_line = lines[kinds.index("samples")][2]
    assert "2 samples" in samples_line and "scores [" in samples_line
    assert lines[-1] == ["end", job["status"]]
    assert watched.returncode == {"succeeded": 0, "needs_review": 2}.get(job["status"], 1)
    assert "samples" in watched.stderr  # the progress line


def test_ponder_watch_of_an_unknown_job_says_so_and_exits_1(server, tenant):
    env = {**os.environ, "PONDER_API_URL": server, "PONDER_API_KEY": tenant.key}
    watched = subprocess.run(
        [sys.executable, "-c", "from ponder.cli.commands import main; main()", "watch", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watched.returncode == 1
    assert "error 404" in watched.stderr and "no job nope" in watched.stderr
