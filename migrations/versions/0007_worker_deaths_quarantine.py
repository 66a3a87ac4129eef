"""deaths attributed per job (in a crowd or alone) and quarantine

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column(
        'crowd_deaths', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('jobs', sa.Column(
        'lone_deaths', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('jobs', sa.Column('died_on', sa.String(length=200), nullable=True))
    op.add_column('jobs', sa.Column('quarantined_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'quarantined_at')
    op.drop_column('jobs', 'died_on')
    op.drop_column('jobs', 'lone_deaths')
    op.drop_column('jobs', 'crowd_deaths')
