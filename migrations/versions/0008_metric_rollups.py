"""metric rollups kept by triggers, batch item counts on the batch, indexes for the alert
window, due notifications and a tenant's jobs of one status

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:00:00

Counters are kept by statement-level triggers, so every writer (the ORM, bulk moves, the
retention purge, raw SQL) keeps them in the transaction of its event. A trigger only INSERTs
into ``metric_deltas`` (no hot row, no lock, no deadlock); ``metric_totals`` is folded from
the deltas by one compactor at a time (ponder/ops/rollups.py). Batch item counts are updated
on the batch row after the statement has locked its items: items before the batch, the order
every item's end already takes.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Must match ponder.ops.metrics.LATENCY_BUCKETS.
LATENCY_BUCKETS = '{1.0,5.0,15.0,30.0,60.0,120.0,300.0,600.0,1800.0,3600.0}'

FUNCTIONS = f"""
CREATE FUNCTION ponder_latency_le(seconds numeric) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(
        (SELECT min(b)::text FROM unnest('{LATENCY_BUCKETS}'::numeric[]) b WHERE seconds <= b),
        '+Inf')
$$;

-- What one job row contributes to the metrics (ponder/ops/metrics.py reads the sums).
CREATE FUNCTION ponder_job_rollup(j jobs)
RETURNS TABLE (metric text, labels text[], value double precision)
LANGUAGE sql STABLE AS $$
    SELECT 'jobs', ARRAY[j.status, j.task]::text[], 1::float8
    UNION ALL SELECT 'tokens', ARRAY['prompt', j.task]::text[], coalesce(j.prompt_tokens, 0)
    UNION ALL SELECT 'tokens', ARRAY['completion', j.task]::text[],
        coalesce(j.completion_tokens, 0)
    UNION ALL SELECT 'tokens', ARRAY['thinking', j.task]::text[], coalesce(j.thinking_tokens, 0)
    UNION ALL SELECT 'tokens', ARRAY['cached', j.task]::text[], coalesce(j.cached_tokens, 0)
    UNION ALL SELECT 'cost', ARRAY[j.task]::text[], coalesce(j.cost, 0)
    UNION ALL SELECT 'latency', ARRAY[j.task,
        ponder_latency_le(extract(epoch FROM j.finished_at - j.created_at))]::text[], 1
        WHERE j.finished_at IS NOT NULL
    UNION ALL SELECT 'latency_sum', ARRAY[j.task]::text[],
        extract(epoch FROM j.finished_at - j.created_at)::float8
        WHERE j.finished_at IS NOT NULL
$$;

CREATE FUNCTION ponder_add_counts(counts jsonb, delta jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, coalesce((counts->>k)::bigint, 0)
                                        + coalesce((delta->>k)::bigint, 0)), '{{}}'::jsonb)
    FROM (SELECT jsonb_object_keys(counts) UNION SELECT jsonb_object_keys(delta)) keys(k)
$$;

CREATE FUNCTION ponder_jobs_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT r.metric, r.labels, sum(r.value)
        FROM new_rows n CROSS JOIN LATERAL ponder_job_rollup(n::jobs) r
        GROUP BY 1, 2 HAVING sum(r.value) <> 0;
        FOR b IN
            SELECT batch_id, jsonb_object_agg(status, n) AS d, min(started) AS started
            FROM (SELECT batch_id, status, count(*) AS n, min(started_at) AS started
                  FROM new_rows WHERE batch_id IS NOT NULL GROUP BY 1, 2) c
            GROUP BY batch_id ORDER BY batch_id
        LOOP
            UPDATE batches SET item_counts = ponder_add_counts(item_counts, b.d),
                items_started_at = least(items_started_at, b.started)
            WHERE id = b.batch_id;
        END LOOP;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only the rows whose counted columns moved: a heartbeat or a purge adds nothing.
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT r.metric, r.labels, sum(r.value)
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (
            SELECT * FROM ponder_job_rollup(n::jobs)
            UNION ALL SELECT x.metric, x.labels, -x.value FROM ponder_job_rollup(o::jobs) x) r
        WHERE (o.status, o.task, o.prompt_tokens, o.completion_tokens, o.thinking_tokens,
               o.cached_tokens, o.cost, o.created_at, o.finished_at)
            IS DISTINCT FROM
              (n.status, n.task, n.prompt_tokens, n.completion_tokens, n.thinking_tokens,
               n.cached_tokens, n.cost, n.created_at, n.finished_at)
        GROUP BY 1, 2 HAVING sum(r.value) <> 0;
        FOR b IN
            SELECT batch_id, jsonb_object_agg(status, n) AS d, min(started) AS started
            FROM (SELECT batch_id, status, sum(k) AS n, min(started) AS started FROM (
                    SELECT n.batch_id, n.status, 1 AS k, n.started_at AS started
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE n.batch_id IS NOT NULL
                      AND (o.status, o.batch_id, o.started_at)
                          IS DISTINCT FROM (n.status, n.batch_id, n.started_at)
                    UNION ALL
                    SELECT o.batch_id, o.status, -1, NULL
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE o.batch_id IS NOT NULL
                      AND (o.status, o.batch_id, o.started_at)
                          IS DISTINCT FROM (n.status, n.batch_id, n.started_at)) x
                  GROUP BY 1, 2) c
            GROUP BY batch_id ORDER BY batch_id
        LOOP
            UPDATE batches SET item_counts = ponder_add_counts(item_counts, b.d),
                items_started_at = least(items_started_at, b.started)
            WHERE id = b.batch_id;
        END LOOP;
    ELSE
        -- A deleted job leaves the gauge of jobs by state; the counters keep what it spent.
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'jobs', ARRAY[status, task]::text[], -count(*) FROM old_rows GROUP BY status, task;
        FOR b IN
            SELECT batch_id, jsonb_object_agg(status, -n) AS d
            FROM (SELECT batch_id, status, count(*) AS n
                  FROM old_rows WHERE batch_id IS NOT NULL GROUP BY 1, 2) c
            GROUP BY batch_id ORDER BY batch_id
        LOOP
            UPDATE batches SET item_counts = ponder_add_counts(item_counts, b.d)
            WHERE id = b.batch_id;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ponder_verdicts_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'verdicts', ARRAY[verifier, passed::text]::text[], count(*)
        FROM new_rows GROUP BY verifier, passed;
    ELSE
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'verdicts', ARRAY[verifier, passed::text]::text[], sum(k) FROM (
            SELECT verifier, passed, 1 AS k FROM new_rows
            UNION ALL SELECT verifier, passed, -1 FROM old_rows) x
        GROUP BY verifier, passed HAVING sum(k) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ponder_escalations_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_deltas (metric, labels, value)
    SELECT 'escalations', '{{}}'::text[], count(*) FROM new_rows
    WHERE kind = 'escalate' HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION ponder_deliveries_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_deltas (metric, labels, value)
    SELECT 'deliveries', ARRAY[n.channel, ponder_delivery_outcome(a.status_code, a.error)]::text[],
        count(*)
    FROM new_rows a JOIN notifications n ON n.id = a.notification_id GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION ponder_delivery_outcome(status_code integer, error text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'success'
                WHEN status_code IS NULL AND error IS NULL THEN 'success'
                ELSE 'failure' END
$$;

CREATE FUNCTION ponder_reviews_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'reviews', ARRAY[j.task, r.decision, r.was_sampled::text]::text[], count(*)
        FROM new_rows r JOIN jobs j ON j.id = r.job_id GROUP BY 1, 2;
    ELSE
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'reviews', ARRAY[j.task, x.decision, x.was_sampled::text]::text[], sum(k)
        FROM (SELECT job_id, decision, was_sampled, 1 AS k FROM new_rows
              UNION ALL SELECT job_id, decision, was_sampled, -1 FROM old_rows) x
        JOIN jobs j ON j.id = x.job_id GROUP BY 1, 2 HAVING sum(k) <> 0;
    END IF;
    RETURN NULL;
END $$;
"""

TRIGGERS = [
    ('jobs', 'jobs_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows', 'ponder_jobs_rollup'),
    ('jobs', 'jobs_rollup_update', 'UPDATE', 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
     'ponder_jobs_rollup'),
    ('jobs', 'jobs_rollup_delete', 'DELETE', 'OLD TABLE AS old_rows', 'ponder_jobs_rollup'),
    ('verdicts', 'verdicts_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_verdicts_rollup'),
    ('verdicts', 'verdicts_rollup_update', 'UPDATE',
     'OLD TABLE AS old_rows NEW TABLE AS new_rows', 'ponder_verdicts_rollup'),
    ('trace_events', 'trace_events_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_escalations_rollup'),
    ('delivery_attempts', 'delivery_attempts_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_deliveries_rollup'),
    ('reviews', 'reviews_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_reviews_rollup'),
    ('reviews', 'reviews_rollup_update', 'UPDATE', 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
     'ponder_reviews_rollup'),
]

# Every row written before this migration, counted once: the same contributions the triggers
# add from now on.
BACKFILL = """
INSERT INTO metric_totals (metric, labels, value)
SELECT metric, labels, sum(value) FROM (
    SELECT r.metric, r.labels, r.value FROM jobs j CROSS JOIN LATERAL ponder_job_rollup(j) r
    UNION ALL SELECT 'verdicts', ARRAY[verifier, passed::text]::text[], count(*)
        FROM verdicts GROUP BY verifier, passed
    UNION ALL SELECT 'escalations', '{}'::text[], count(*)
        FROM trace_events WHERE kind = 'escalate'
    UNION ALL SELECT 'deliveries',
        ARRAY[n.channel, ponder_delivery_outcome(a.status_code, a.error)]::text[], count(*)
        FROM delivery_attempts a JOIN notifications n ON n.id = a.notification_id GROUP BY 2
    UNION ALL SELECT 'reviews', ARRAY[j.task, r.decision, r.was_sampled::text]::text[], count(*)
        FROM reviews r JOIN jobs j ON j.id = r.job_id GROUP BY 2
) x GROUP BY metric, labels HAVING sum(value) <> 0 OR metric = 'escalations';

UPDATE batches b SET item_counts = c.counts, items_started_at = c.started
FROM (SELECT batch_id, jsonb_object_agg(status, n) AS counts, min(started) AS started
      FROM (SELECT batch_id, status, count(*) AS n, min(started_at) AS started
            FROM jobs WHERE batch_id IS NOT NULL GROUP BY 1, 2) s
      GROUP BY batch_id) c
WHERE b.id = c.batch_id;
"""


def upgrade() -> None:
    op.create_table(
        'metric_deltas',
        sa.Column('id', sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('labels', ARRAY(sa.Text()), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
    )
    op.create_table(
        'metric_totals',
        sa.Column('metric', sa.String(length=32), primary_key=True),
        sa.Column('labels', ARRAY(sa.Text()), primary_key=True),
        sa.Column('value', sa.Float(), nullable=False),
    )
    op.add_column('batches', sa.Column(
        'item_counts', JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.add_column('batches', sa.Column(
        'items_started_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_jobs_finished_at', 'jobs', ['finished_at'])
    op.create_index(
        'ix_jobs_tenant_status_created', 'jobs', ['tenant_id', 'status', 'created_at', 'id'])
    op.create_index(
        'ix_notifications_due', 'notifications', ['next_attempt_at'],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.execute(FUNCTIONS)
    # Counted with the tables locked against writes, so no row is both backfilled and
    # counted by a trigger, and none is missed.
    op.execute('LOCK TABLE jobs, verdicts, trace_events, delivery_attempts, reviews, batches '
               'IN SHARE ROW EXCLUSIVE MODE')
    for table, name, event, transition, function in TRIGGERS:
        op.execute(
            f'CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} '
            f'FOR EACH STATEMENT EXECUTE FUNCTION {function}()'
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    for table, name, *_ in TRIGGERS:
        op.execute(f'DROP TRIGGER {name} ON {table}')
    for function in (
        'ponder_reviews_rollup()', 'ponder_deliveries_rollup()', 'ponder_escalations_rollup()',
        'ponder_verdicts_rollup()', 'ponder_jobs_rollup()', 'ponder_add_counts(jsonb, jsonb)',
        'ponder_job_rollup(jobs)', 'ponder_latency_le(numeric)',
        'ponder_delivery_outcome(integer, text)',
    ):
        op.execute(f'DROP FUNCTION {function}')
    op.drop_index('ix_notifications_due', table_name='notifications')
    op.drop_index('ix_jobs_tenant_status_created', table_name='jobs')
    op.drop_index('ix_jobs_finished_at', table_name='jobs')
    op.drop_column('batches', 'items_started_at')
    op.drop_column('batches', 'item_counts')
    op.drop_table('metric_totals')
    op.drop_table('metric_deltas')
