"""deadlines: complete_by on jobs and batches

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 18:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('complete_by', sa.DateTime(timezone=True), nullable=True))
    op.add_column('batches', sa.Column('complete_by', sa.DateTime(timezone=True), nullable=True))
    # Only the queued jobs with a deadline: the reconciler's and the claim's look-ups.
    op.create_index(
        'ix_jobs_queued_complete_by',
        'jobs',
        ['complete_by'],
        postgresql_where=sa.text("status = 'queued' AND complete_by IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index('ix_jobs_queued_complete_by', table_name='jobs')
    op.drop_column('batches', 'complete_by')
    op.drop_column('jobs', 'complete_by')
