"""result cache: a job's cache key and the job that answered it from the cache

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('cache_key', sa.String(length=64), nullable=True))
    op.add_column('jobs', sa.Column('cached_from', sa.String(length=36), nullable=True))
    # A claim looks up a tenant's finished answers for the key, and its runs in flight for it.
    op.create_index(
        'ix_jobs_cache_key_finished',
        'jobs',
        ['tenant_id', 'cache_key'],
        postgresql_where=sa.text(
            "status IN ('succeeded', 'reviewed') AND cache_key IS NOT NULL"
        ),
    )
    op.create_index(
        'ix_jobs_cache_key_running',
        'jobs',
        ['tenant_id', 'cache_key'],
        postgresql_where=sa.text("status = 'running' AND cache_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index('ix_jobs_cache_key_running', table_name='jobs')
    op.drop_index('ix_jobs_cache_key_finished', table_name='jobs')
    op.drop_column('jobs', 'cached_from')
    op.drop_column('jobs', 'cache_key')
