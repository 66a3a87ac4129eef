"""Per-arm metric rollups: jobs by A/B arm and status, their tokens and cost, and review
decisions by arm (ponder/jobs/arms.py, ponder/ops/metrics.py). Triggers of their own beside
migration 0008's, so that neither changes the other's functions.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 20:20:00
"""

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

FUNCTIONS = """
-- What one job in an experiment (config->>'arm' set at submission) adds to the arm metrics.
CREATE FUNCTION ponder_arm_rollup(j jobs)
RETURNS TABLE (metric text, labels text[], value double precision)
LANGUAGE sql STABLE AS $$
    SELECT x.metric, x.labels, x.value FROM (
        SELECT 'arm_jobs' AS metric, ARRAY[j.task, j.config->>'arm', j.status]::text[] AS labels,
            1::float8 AS value
        UNION ALL SELECT 'arm_tokens', ARRAY['prompt', j.task, j.config->>'arm']::text[],
            coalesce(j.prompt_tokens, 0)
        UNION ALL SELECT 'arm_tokens', ARRAY['completion', j.task, j.config->>'arm']::text[],
            coalesce(j.completion_tokens, 0)
        UNION ALL SELECT 'arm_tokens', ARRAY['thinking', j.task, j.config->>'arm']::text[],
            coalesce(j.thinking_tokens, 0)
        UNION ALL SELECT 'arm_tokens', ARRAY['cached', j.task, j.config->>'arm']::text[],
            coalesce(j.cached_tokens, 0)
        UNION ALL SELECT 'arm_cost', ARRAY[j.task, j.config->>'arm']::text[], coalesce(j.cost, 0)
    ) x WHERE j.config->>'arm' IS NOT NULL
$$;

CREATE FUNCTION ponder_jobs_arm_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT r.metric, r.labels, sum(r.value)
        FROM new_rows n CROSS JOIN LATERAL ponder_arm_rollup(n::jobs) r
        GROUP BY 1, 2 HAVING sum(r.value) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        -- The arm is frozen at submission; only the counted columns move a job's figures.
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT r.metric, r.labels, sum(r.value)
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (
            SELECT * FROM ponder_arm_rollup(n::jobs)
            UNION ALL SELECT x.metric, x.labels, -x.value FROM ponder_arm_rollup(o::jobs) x) r
        WHERE (o.status, o.prompt_tokens, o.completion_tokens, o.thinking_tokens,
               o.cached_tokens, o.cost)
            IS DISTINCT FROM
              (n.status, n.prompt_tokens, n.completion_tokens, n.thinking_tokens,
               n.cached_tokens, n.cost)
        GROUP BY 1, 2 HAVING sum(r.value) <> 0;
    ELSE
        -- A deleted job leaves the gauge of jobs by arm; the counters keep what it spent.
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'arm_jobs', ARRAY[task, config->>'arm', status]::text[], -count(*)
        FROM old_rows WHERE config->>'arm' IS NOT NULL GROUP BY task, config->>'arm', status;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ponder_reviews_arm_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'arm_reviews', ARRAY[j.task, j.config->>'arm', r.decision]::text[], count(*)
        FROM new_rows r JOIN jobs j ON j.id = r.job_id
        WHERE j.config->>'arm' IS NOT NULL GROUP BY 1, 2;
    ELSE
        INSERT INTO metric_deltas (metric, labels, value)
        SELECT 'arm_reviews', ARRAY[j.task, j.config->>'arm', x.decision]::text[], sum(k)
        FROM (SELECT job_id, decision, 1 AS k FROM new_rows
              UNION ALL SELECT job_id, decision, -1 FROM old_rows) x
        JOIN jobs j ON j.id = x.job_id
        WHERE j.config->>'arm' IS NOT NULL GROUP BY 1, 2 HAVING sum(k) <> 0;
    END IF;
    RETURN NULL;
END $$;
"""

TRIGGERS = [
    ('jobs', 'jobs_arm_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_jobs_arm_rollup'),
    ('jobs', 'jobs_arm_rollup_update', 'UPDATE', 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
     'ponder_jobs_arm_rollup'),
    ('jobs', 'jobs_arm_rollup_delete', 'DELETE', 'OLD TABLE AS old_rows',
     'ponder_jobs_arm_rollup'),
    ('reviews', 'reviews_arm_rollup_insert', 'INSERT', 'NEW TABLE AS new_rows',
     'ponder_reviews_arm_rollup'),
    ('reviews', 'reviews_arm_rollup_update', 'UPDATE',
     'OLD TABLE AS old_rows NEW TABLE AS new_rows', 'ponder_reviews_arm_rollup'),
]

# Jobs and reviews written before this migration, counted once, as the triggers count them.
BACKFILL = """
INSERT INTO metric_totals (metric, labels, value)
SELECT metric, labels, sum(value) FROM (
    SELECT r.metric, r.labels, r.value FROM jobs j CROSS JOIN LATERAL ponder_arm_rollup(j) r
    UNION ALL SELECT 'arm_reviews', ARRAY[j.task, j.config->>'arm', r.decision]::text[], count(*)
        FROM reviews r JOIN jobs j ON j.id = r.job_id
        WHERE j.config->>'arm' IS NOT NULL GROUP BY 2
) x GROUP BY metric, labels HAVING sum(value) <> 0
ON CONFLICT (metric, labels) DO UPDATE SET value = metric_totals.value + excluded.value;
"""


def upgrade() -> None:
    op.execute(FUNCTIONS)
    op.execute('LOCK TABLE jobs, reviews IN SHARE ROW EXCLUSIVE MODE')
    for table, name, event, transition, function in TRIGGERS:
        op.execute(
            f'CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} '
            f'FOR EACH STATEMENT EXECUTE FUNCTION {function}()'
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    for table, name, *_ in TRIGGERS:
        op.execute(f'DROP TRIGGER {name} ON {table}')
    op.execute("DELETE FROM metric_totals WHERE metric IN ('arm_jobs', 'arm_tokens', "
               "'arm_cost', 'arm_reviews')")
    op.execute("DELETE FROM metric_deltas WHERE metric IN ('arm_jobs', 'arm_tokens', "
               "'arm_cost', 'arm_reviews')")
    for function in (
        'ponder_reviews_arm_rollup()', 'ponder_jobs_arm_rollup()', 'ponder_arm_rollup(jobs)'
    ):
        op.execute(f'DROP FUNCTION {function}')
