"""a counter of engine calls charged to a job, so a retried charge is not counted twice

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 08:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('charges', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('jobs', 'charges')
