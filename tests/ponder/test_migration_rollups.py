"""Migration 0008 applies to a database holding jobs from before it: the metric rollups and
the batch item counts are backfilled from the rows already there, then kept by its triggers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ponder.cli.dbadmin import ROOT, recreate_database
from ponder.config import get_settings
from ponder.db import get_engine
from ponder.ops.rollups import read_totals
from tests.conftest import TEST_DB_URL
from tests.ponder.ops.test_rollups import RECOUNT

OLD_DB_URL = TEST_DB_URL + "_before_0008"

BEFORE_0008 = [
    "insert into tenants (id, name, webhook_secret) values ('t', 'old', 'whsec_x')",
    "insert into batches (id, tenant_id, source, item_count, priority, round) "
    "values ('b', 't', 'api', 2, 7, 1)",
    """insert into jobs (id, tenant_id, task, status, priority, request_hash, config, document,
        attempts, lease_token, cancel_requested, prompt_tokens, completion_tokens,
        cached_tokens, thinking_tokens, engine_wall_s, charges, cost, created_at, started_at,
        finished_at, batch_id, batch_index)
    values
      ('j1', 't', 'medrec_extraction', 'succeeded', 5, 'h', '{}', 'd', 1, 1, false, 120, 40,
       5, 3, 1.0, 1, 0.25, now() - interval '100 seconds', now() - interval '99 seconds',
       now() - interval '10 seconds', null, null),
      ('j2', 't', 'medrec_extraction', 'failed', 5, 'h', '{}', 'd', 3, 3, false, 60, 20,
       0, 0, 1.0, 1, 0.1, now() - interval '2 hours', now() - interval '2 hours',
       now() - interval '1 hour', 'b', 0),
      ('j3', 't', 'contract_review', 'queued', 5, 'h', '{}', 'd', 0, 0, false, 0, 0,
       0, 0, 0, 0, null, now(), null, null, 'b', 1)""",
    """insert into candidates (id, job_id, step, idx, attempt, text, prompt_tokens,
        completion_tokens, cached_tokens, score, passed_required)
    values ('c1', 'j1', 'sample', 0, 1, '{}', 120, 40, 0, 1, true),
           ('c2', 'j1', 'sample', 1, 1, '{}', 0, 0, 0, 0, false)""",
    """insert into verdicts (id, candidate_id, verifier, passed, score, required, weight,
        findings)
    values ('v1', 'c1', 'schema', true, 1, true, 1, '[]'),
           ('v2', 'c2', 'schema', false, 0, true, 1, '[]'),
           ('v3', 'c1', 'evidence', true, 1, false, 1, '[]')""",
    """insert into trace_events (job_id, seq, attempt, kind, data)
    values ('j1', 1, 1, 'start', '{}'), ('j1', 2, 1, 'escalate', '{}')""",
    """insert into notifications (id, job_id, tenant_id, channel, target, event_type,
        message_id, payload, status, attempts, max_attempts)
    values ('n1', 'j1', 't', 'webhook', 'https://example.org', 'job.ended', 'm1', '{}',
        'delivered', 2, 10)""",
    """insert into delivery_attempts (notification_id, attempt, status_code, duration_ms)
    values ('n1', 1, 500, 5), ('n1', 2, 204, 5)""",
    """insert into reviews (id, job_id, tenant_id, decision, was_sampled)
    values ('r1', 'j1', 't', 'approved', true)""",
]


def _alembic() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture
def old_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """A database of its own at revision 0007, the engine and settings pointed at it."""
    recreate_database(OLD_DB_URL)
    monkeypatch.setenv("PONDER_DATABASE__URL", OLD_DB_URL)
    get_settings.cache_clear()
    try:
        command.upgrade(_alembic(), "0007")
        yield get_engine()
    finally:
        get_engine().dispose()
        monkeypatch.setenv("PONDER_DATABASE__URL", TEST_DB_URL)
        get_settings.cache_clear()


def _recount(conn: sa.Connection) -> dict[str, dict[tuple[str, ...], float]]:
    found = {}
    for metric in ("jobs", "tokens", "cost", "latency_sum", "verdicts", "escalations",
                   "deliveries", "reviews"):  # fmt: skip
        rows = conn.execute(sa.text(RECOUNT[metric])).all()
        found[metric] = {tuple(labels): float(n) for labels, n in rows if n}
    return found


def test_upgrading_a_database_with_jobs_backfills_the_rollups_and_batch_counts(old_database):
    with old_database.begin() as conn:
        for sql in BEFORE_0008:
            conn.execute(sa.text(sql))
    command.upgrade(_alembic(), "head")
    with old_database.begin() as conn:
        truth = _recount(conn)
        totals = read_totals(conn)
        counts = conn.execute(
            sa.text("select item_counts, items_started_at is not null from batches")
        ).one()
    for metric, expected in truth.items():
        got = {k: v for k, v in totals.get(metric, {}).items() if v}
        assert got == pytest.approx(expected), metric
    assert totals["latency"] == {("medrec_extraction", "120.0"): 1.0,
                                 ("medrec_extraction", "3600.0"): 1.0}  # fmt: skip
    assert totals["escalations"] == {(): 1.0}
    assert totals["deliveries"] == {("webhook", "failure"): 1.0, ("webhook", "success"): 1.0}
    assert counts == ({"failed": 1, "queued": 1}, True)

    # From now on the triggers count: the queued item ends, the gauge and the batch follow.
    with old_database.begin() as conn:
        conn.execute(sa.text("update jobs set status = 'cancelled', finished_at = now() "
                             "where id = 'j3'"))  # fmt: skip
    with old_database.connect() as conn:
        totals = read_totals(conn)
        counts = conn.execute(sa.text("select item_counts from batches")).scalar_one()
    assert totals["jobs"].get(("queued", "contract_review")) == 0
    assert totals["jobs"][("cancelled", "contract_review")] == 1
    assert counts == {"failed": 1, "queued": 0, "cancelled": 1}
