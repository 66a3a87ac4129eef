"""the review workspace: reviewers, reviews, the review lock and QA sampling on jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The status column is a string: 'reviewed' needs no enum change.
    op.add_column('jobs', sa.Column(
        'qa_sampled', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('jobs', sa.Column('review_locked_by', sa.String(length=36), nullable=True))
    op.add_column('jobs', sa.Column(
        'review_lock_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('reviewers',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'email', name='uq_reviewers_tenant_email')
    )
    op.create_index(op.f('ix_reviewers_tenant_id'), 'reviewers', ['tenant_id'], unique=False)
    op.create_table('reviews',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reviewer_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('api_key_id', sa.String(length=36), nullable=True),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=True),
    sa.Column('answer_before', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('answer_after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('diff', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('verdicts', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('was_sampled', sa.Boolean(), nullable=False),
    sa.Column('seconds_to_review', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['reviewer_id'], ['reviewers.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_reviews_job_id'), 'reviews', ['job_id'], unique=False)
    op.create_index('ix_reviews_tenant_created', 'reviews', ['tenant_id', 'created_at'])


def downgrade() -> None:
    op.drop_table('reviews')
    op.drop_table('reviewers')
    for column in ('review_lock_expires_at', 'review_locked_by', 'qa_sampled'):
        op.drop_column('jobs', column)
