"""What the hot paths cost as history grows: each size gets its own database filled with
synthetic rows of a realistic shape (``generate_series``), then each path is timed through
the project's own functions (median of several warm runs).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py --sizes 10000 100000 1000000 --out scale.json

Databases ``ponder_scale_<size>`` are created and filled once, then reused (``--refill`` to
rebuild them); Redis database 12 is the broker the scrape reads queue depths from. Each size
runs in its own process, so the engine and the settings point at its database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_BROKER = "redis://127.0.0.1:6379/12"
DB_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
JOBS_PER_DAY = 10_000
"""History grows at a constant rate (a hospital's nightly batch of 10,000 notes): a larger size
is a longer history, not more work per hour, so the alert window holds the same jobs."""
BIG_BATCH = 50_000
IN_FLIGHT = 200
"""The newest jobs are still queued or running, whatever the size."""
FILL_CHUNK = 50_000
TASK_NAMES = ("medrec_extraction", "contract_review", "math_answer")


def database_url(size: int) -> str:
    return f"{DB_BASE}ponder_scale_{size}"


# -- the fill ---------------------------------------------------------------------------------

# One chunk of jobs [lo, hi) and every row that hangs off them. Tenant t0 owns the batches
# (the first half of the jobs, in batches of BIG_BATCH items or half the size if smaller);
# the API jobs are spread over four tenants. About 8 candidates, 9 verdicts, 10 trace events,
# 1.5 notifications and 1.5 delivery attempts per job.
FILL_SQL = [
    # jobs
    """
    insert into jobs (id, tenant_id, task, status, priority, request_hash, config, document,
        metadata, webhook_url, email, batch_id, batch_index, custom_id, attempts, lease_token,
        lease_owner, lease_expires_at, created_at, enqueued_at, started_at, finished_at,
        result, selected_candidate_id, error, prompt_tokens, completion_tokens,
        cached_tokens, thinking_tokens, engine_wall_s, charges, cost, qa_sampled, cancel_requested)
    select md5('job' || i)::uuid::text,
        case when i < :half then 't0' else 't' || (i % 4) end,
        (array['medrec_extraction', 'contract_review', 'math_answer'])[1 + i % 3],
        s.status, 5, md5('req' || i), cast(:config as jsonb),
        repeat('Patient seen for follow-up; medications reviewed and continued. ', 24),
        '{"ward": "b"}'::jsonb,
        'https://example.org/hook', case when i % 2 = 0 then 'ops@example.org' end,
        case when i < :half then 'batch-' || (i / :bsize) end,
        case when i < :half then i % :bsize end,
        case when i < :half then 'item-' || (i % :bsize) end,
        case when s.status = 'queued' then 0 else 1 end, 1,
        case when s.status = 'running' then 'bench:1:1' end,
        -- leases already run out (the reconciler re-sends them), whenever the database
        -- was filled: every size has the same work for it
        case when s.status = 'running' then c.created + interval '5 minutes' end,
        c.created, c.created,
        case when s.status <> 'queued' then c.created + interval '2 seconds' end,
        case when s.status not in ('queued', 'running')
            then c.created + make_interval(secs => 5 + (i * 37) % 900) end,
        case when s.status in ('succeeded', 'needs_review', 'reviewed')
            then '{"medications": [{"name": "metoprolol", "dose": "50 mg"}]}'::jsonb end,
        case when s.status not in ('queued', 'running')
            then md5('cand' || i || '-0')::uuid::text end,
        case when s.status in ('failed', 'cancelled') then 'synthetic failure' end,
        1500 + i % 300, 400 + i % 100, i % 500, i % 50, 4.5, 1,
        case when s.status not in ('queued', 'running') then 0.002 + (i % 10) * 0.0001 end,
        s.status = 'succeeded' and i % 20 = 0, false
    from generate_series(:lo, :hi - 1) as i
    cross join lateral (select now() - make_interval(secs => (:size - i) * 86400.0 / :per_day)
        as created) c
    cross join lateral (select case
        when i >= :size - :in_flight / 2 then 'queued'
        when i >= :size - :in_flight then 'running'
        when i % 100 < 3 then 'failed'
        when i % 100 < 8 then 'needs_review'
        when i % 100 < 9 then 'reviewed'
        when i % 100 < 10 then 'cancelled'
        else 'succeeded' end as status) s
    """,
    # candidates: 8 per ended or running job
    """
    insert into candidates (id, job_id, step, idx, attempt, text, parsed, prompt_tokens,
        completion_tokens, cached_tokens, mean_logprob, min_logprob, finish_reason, score,
        passed_required, engine_started_at, engine_finished_at, created_at)
    select md5('cand' || i || '-' || k)::uuid::text, md5('job' || i)::uuid::text, 'sample', k,
        1, repeat('{"medications": [{"name": "metoprolol", "dose": "50 mg"}]} ', 6),
        '{"medications": [{"name": "metoprolol"}]}'::jsonb,
        case when k = 0 then 1500 else 0 end, 50, 0, -0.2, -2.5, 'stop', 0.5 + k * 0.05,
        k % 5 <> 4, now(), now(), now()
    from generate_series(:lo, least(:hi, :size - :in_flight / 2) - 1) as i
    cross join generate_series(0, 7) as k
    """,
    # verdicts: a schema verdict on each candidate, two more on the first
    """
    insert into verdicts (id, candidate_id, verifier, passed, score, required, weight, findings)
    select md5('verd' || i || '-' || k || v)::uuid::text, md5('cand' || i || '-' || k)::uuid::text,
        v, (i + k) % 13 <> 0, 1.0, v = 'schema', 1.0, '[]'::jsonb
    from generate_series(:lo, least(:hi, :size - :in_flight / 2) - 1) as i
    cross join generate_series(0, 7) as k
    cross join lateral unnest(case when k = 0 then array['schema', 'evidence', 'lexicon']
        else array['schema'] end) as v
    """,
    # trace events: 10 per job, one in ten jobs escalates
    """
    insert into trace_events (job_id, seq, attempt, kind, data, created_at)
    select md5('job' || i)::uuid::text, e, 1,
        case when e = 1 then 'start' when e = 5 and i % 10 = 0 then 'escalate'
             when e = 10 then 'selection' else 'step' end,
        '{"note": "synthetic"}'::jsonb, now()
    from generate_series(:lo, least(:hi, :size - :in_flight) - 1) as i
    cross join generate_series(1, 10) as e
    """,
    # notifications: a webhook per ended job, an email for half of them
    """
    insert into notifications (id, job_id, tenant_id, channel, target, event_type, message_id,
        payload, status, attempts, max_attempts, next_attempt_at, created_at, delivered_at)
    select md5('note' || i || ch)::uuid::text, md5('job' || i)::uuid::text,
        case when i < :half then 't0' else 't' || (i % 4) end, ch,
        case when ch = 'email' then 'ops@example.org' else 'https://example.org/hook' end,
        'job.ended', 'msg_' || md5('note' || i || ch),
        '{"type": "job.ended"}'::jsonb,
        case when i % 100 = 7 and i >= :size - 5000 then 'pending'
             when i % 500 = 3 then 'failed' else 'delivered' end,
        1, 10,
        case when i % 100 = 7 and i >= :size - 5000 then now() - interval '2 minutes' end,
        now(), now()
    from generate_series(:lo, least(:hi, :size - :in_flight) - 1) as i
    cross join lateral unnest(case when i % 2 = 0 then array['webhook', 'email']
        else array['webhook'] end) as ch
    """,
    # delivery attempts: one per notification, a failed first try for one in ten
    """
    insert into delivery_attempts (notification_id, attempt, status_code, error, duration_ms,
        created_at)
    select md5('note' || i || ch)::uuid::text, a,
        case when a = 1 and i % 10 = 0 then 503 when ch = 'webhook' then 200 end,
        null, 40, now()
    from generate_series(:lo, least(:hi, :size - :in_flight) - 1) as i
    cross join lateral unnest(case when i % 2 = 0 then array['webhook', 'email']
        else array['webhook'] end) as ch
    cross join lateral generate_series(1, case when i % 10 = 0 then 2 else 1 end) as a
    """,
]

SETUP_SQL = [
    "insert into tenants (id, name, webhook_secret) select 't' || i, 'tenant-' || i, "
    "'whsec_bench' from generate_series(0, 3) i",
    """
    insert into batches (id, tenant_id, source, name, item_count, priority, round, created_at,
        finished_at)
    select 'batch-' || b, 't0', 'nightly', 'night ' || b, :bsize, 7, 1,
        now() - make_interval(secs => (:size - b * :bsize) * 86400.0 / :per_day),
        case when (b + 1) * :bsize < :size - :in_flight
            then now() - make_interval(secs => (:size - (b + 1) * :bsize) * 86400.0 / :per_day)
        end
    from generate_series(0, (:half - 1) / :bsize) b
    """,
]


def fill(size: int) -> None:
    import sqlalchemy as sa

    from ponder.cli.dbadmin import migrate, recreate_database
    from ponder.config import get_settings
    from ponder.db import get_engine
    from ponder.jobs.service import JobRequest, frozen_config

    recreate_database(database_url(size))
    migrate()
    request = JobRequest(task="medrec_extraction", document="Patient note.")
    config = frozen_config(request, get_settings(), "tenant-0")
    params: dict[str, Any] = {
        "size": size,
        "half": size // 2,
        "bsize": min(BIG_BATCH, size // 2),
        "per_day": JOBS_PER_DAY,
        "in_flight": IN_FLIGHT,
        "config": json.dumps(config),
    }
    engine = get_engine()
    started = time.perf_counter()
    with engine.begin() as conn:
        for sql in SETUP_SQL:
            conn.execute(sa.text(sql), params)
    for lo in range(0, size, FILL_CHUNK):
        hi = min(size, lo + FILL_CHUNK)
        with engine.begin() as conn:
            for sql in FILL_SQL:
                conn.execute(sa.text(sql), {**params, "lo": lo, "hi": hi})
        print(f"  filled {hi}/{size} jobs ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("vacuum analyze"))
    print(f"  fill of {size} done in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def is_filled(size: int) -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(database_url(size))
        with engine.connect() as conn:
            done = conn.execute(sa.text("select count(*) from jobs")).scalar_one() == size
        engine.dispose()
        return bool(done)
    except sa.exc.OperationalError:
        return False
    except sa.exc.ProgrammingError:
        return False


# -- the paths --------------------------------------------------------------------------------


def paths(size: int) -> dict[str, Callable[[], object]]:
    """Each hot path as the API or a worker runs it; writes are rolled back."""
    import sqlalchemy as sa
    from prometheus_client import generate_latest
    from sqlmodel import Session, col, select

    from ponder.batches import service as batches
    from ponder.batches.results import iter_results
    from ponder.config import get_settings
    from ponder.db import discard_after_commit, get_engine
    from ponder.jobs import lease
    from ponder.jobs import service as jobs
    from ponder.jobs.reconcile import reconcile
    from ponder.jobs.trace import read_trace
    from ponder.models import Batch, Job, JobStatus, Tenant
    from ponder.ops.alerts import check_alerts
    from ponder.ops.metrics import registry
    from ponder.pages import encode_cursor

    settings = get_settings()
    engine = get_engine()
    reg = registry(settings)
    _clock_at_end_of_history(engine)
    with Session(engine) as s:
        api_tenant = s.get(Tenant, "t1")
        batch_tenant = s.get(Tenant, "t0")
        assert api_tenant is not None and batch_tenant is not None
        deep = s.exec(
            select(Job)
            .where(Job.tenant_id == "t1")
            .order_by(col(Job.created_at))
            .offset(50)
            .limit(1)
        ).one()
        deep_cursor = encode_cursor(deep)
        ended = s.exec(select(Job).where(Job.id == jobs_id(size // 2 + 41))).one()
        big_batch = s.get(Batch, "batch-0")
        assert big_batch is not None
        queued = [
            row
            for (row,) in s.execute(
                sa.select(col(Job.id)).where(col(Job.status) == JobStatus.queued.value)
            ).all()
        ]
        s.expunge_all()

    def rolled_back(work: Callable[[Session], object]) -> Callable[[], object]:
        def run() -> object:
            with Session(engine) as s:
                try:
                    return work(s)
                finally:
                    discard_after_commit(s)
                    s.rollback()

        return run

    def claim_and_finish(s: Session) -> object:
        job_id = queued[0]
        got = lease.claim(session=s, job_id=job_id, owner="bench:1:1", settings=settings)
        job = lease.locked_for_run(s, job_id, got.token)
        assert job is not None, got
        lease.finish(session=s, job=job, status=JobStatus.succeeded, settings=settings,
                    result={"medications": []})  # fmt: skip
        s.flush()
        return job

    def submit(s: Session) -> object:
        request = jobs.JobRequest(task="medrec_extraction", document="Patient seen today.")
        job, _ = jobs.submit(session=s, tenant=api_tenant, request=request,
                             idempotency_key=None, settings=settings)  # fmt: skip
        s.flush()  # the INSERT, as the request's commit would send it
        return job

    def first_lines(count: int) -> object:
        lines = iter_results(big_batch.id, ended_only=True)
        for n, _ in enumerate(lines):
            if n + 1 >= count:
                break
        lines.close()  # type: ignore[attr-defined]
        return count

    def page_of_batches(s: Session) -> object:
        page, _ = batches.list_batches(session=s, tenant=batch_tenant, limit=20)
        return batches.summarize_all(s, page)

    def alert_check() -> object:
        with engine.connect() as conn:
            return check_alerts(conn, settings)

    return {
        "metrics_scrape": lambda: generate_latest(reg),
        "alert_check": alert_check,
        "reconciler_pass": rolled_back(lambda s: reconcile(session=s, settings=settings)),
        "claim_and_finish": rolled_back(claim_and_finish),
        "list_first_page": rolled_back(lambda s: jobs.list_jobs(
            session=s, tenant=api_tenant, status=None, task=None, limit=50, cursor=None)),
        "list_deep_page": rolled_back(lambda s: jobs.list_jobs(
            session=s, tenant=api_tenant, status=None, task=None, limit=50, cursor=deep_cursor)),
        "status_filter": rolled_back(lambda s: jobs.list_jobs(
            session=s, tenant=api_tenant, status="failed", task=None, limit=50, cursor=None)),
        "status_filter_none": rolled_back(lambda s: jobs.list_jobs(
            session=s, tenant=api_tenant, status="expired", task=None, limit=50, cursor=None)),
        "read_trace": rolled_back(lambda s: read_trace(s, ended)),
        "batch_results_1000_lines": lambda: first_lines(1000),
        "batch_summary": rolled_back(lambda s: batches.summarize(s, s.merge(big_batch))),
        "list_batches": rolled_back(page_of_batches),
        "submit": rolled_back(submit),
    }  # fmt: skip


def _clock_at_end_of_history(engine: Any) -> None:
    """The alert check reads the jobs that ended in the last hour of the clock; a database
    filled an hour ago would have none. Set its clock to the end of the filled history, so
    every size, whenever filled, has the same hour of work in its window."""
    import sqlalchemy as sa

    from ponder.ops import alerts

    with engine.connect() as conn:
        lag = conn.execute(sa.text("select now() - max(created_at) from jobs")).scalar_one()
    real = alerts.utcnow
    alerts.utcnow = lambda: real() - lag


def jobs_id(i: int) -> str:
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"job{i}".encode()).hexdigest()))


def measure(size: int, runs: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    for name, path in paths(size).items():
        path()  # warm: plans cached, pages in memory
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            path()
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = round(statistics.median(samples), 2)
        print(f"  {size:>9} {name:<26} {timings[name]:>10.2f} ms", file=sys.stderr, flush=True)
    return timings


def one_size(size: int, runs: int, refill: bool) -> dict[str, float]:
    """Runs in a child process whose environment points at the size's database."""
    if refill or not is_filled(size):
        print(f"filling {size} jobs", file=sys.stderr, flush=True)
        fill(size)
    return measure(size, runs)


def table(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    head = "| path | " + " | ".join(f"{s:,} jobs" for s in sizes) + " |"
    growth = len(sizes) >= 2
    if growth:
        head += f" growth {sizes[-2]:,} → {sizes[-1]:,} |"
    lines = [head, "|" + "---|" * (len(sizes) + 1 + int(growth))]
    for name, by_size in result["paths"].items():
        cells = [f"{by_size[str(s)]:,.1f} ms" for s in sizes]
        row = f"| {name} | " + " | ".join(cells) + " |"
        if growth:
            row += f" {by_size[str(sizes[-1])] / max(by_size[str(sizes[-2])], 0.01):.2f} |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5, help="warm runs per path (median)")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    parser.add_argument("--refill", action="store_true", help="rebuild the databases")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.runs, args.refill)))
        return
    result: dict[str, Any] = {"sizes": args.sizes, "paths": {}}
    for size in args.sizes:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PONDER_DATABASE__URL": database_url(size),
            "PONDER_BROKER__URL": BENCH_BROKER,
        }
        cmd = [sys.executable, __file__, "--one", str(size), "--runs", str(args.runs)]
        if args.refill:
            cmd.append("--refill")
        out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        for name, ms in json.loads(out.strip().splitlines()[-1]).items():
            result["paths"].setdefault(name, {})[str(size)] = ms
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
