"""key scopes, expiry and last use; retention, legal holds and deletion tombstones on jobs and
batches; the append-only access audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14 09:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Refuses every change to an audit row, for every role that does not bypass triggers. The
# application's role must not own the table (the owner could drop the trigger): see
# docs/security.md for the grants.
APPEND_ONLY = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


def _lifecycle(table: str) -> None:
    op.add_column(table, sa.Column('legal_hold_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column(table, sa.Column('legal_hold_by', sa.String(length=36), nullable=True))
    op.add_column(table, sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column(table, sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column(table, sa.Column('deleted_by', sa.String(length=36), nullable=True))


def upgrade() -> None:
    # Existing keys keep every right they had: all three scopes.
    op.add_column('api_keys', sa.Column(
        'scopes', sa.ARRAY(sa.String(length=16)), nullable=False,
        server_default='{submit,read,admin}'))
    op.add_column('api_keys', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('api_keys', sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tenants', sa.Column('retention_days', sa.Integer(), nullable=True))
    _lifecycle('jobs')
    _lifecycle('batches')
    op.create_index(
        'ix_jobs_unpurged_finished', 'jobs', ['finished_at'],
        postgresql_where=sa.text('purged_at IS NULL'))
    op.create_table('audit_events',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('key_id', sa.String(length=36), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('batch_id', sa.String(length=36), nullable=True),
    sa.Column('target_id', sa.String(length=36), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(
        'ix_audit_events_tenant_created', 'audit_events', ['tenant_id', 'created_at', 'id'])
    op.execute(APPEND_ONLY)


def downgrade() -> None:
    op.execute('DROP TABLE audit_events')
    op.execute('DROP FUNCTION audit_events_append_only()')
    op.drop_index('ix_jobs_unpurged_finished', table_name='jobs')
    for table in ('jobs', 'batches'):
        for column in ('deleted_by', 'deleted_at', 'purged_at', 'legal_hold_by', 'legal_hold_at'):
            op.drop_column(table, column)
    op.drop_column('tenants', 'retention_days')
    for column in ('last_used_at', 'expires_at', 'scopes'):
        op.drop_column('api_keys', column)
