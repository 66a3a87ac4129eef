"""Escalation across models: which registry model made each candidate, and each job's tokens
and engine time per model, so its cost sums each model's usage at that model's prices.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 20:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("candidates", sa.Column("model", sa.String(40), nullable=True))
    op.add_column(
        "jobs",
        sa.Column("usage_by_model", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("jobs", "usage_by_model")
    op.drop_column("candidates", "model")
