"""OpenAI-compatible files and batches: uploaded request files, and what an OpenAI batch adds
to its native batch (input file, endpoint, window, lines that became no job, result files)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "openai_files",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_openai_files_tenant"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_openai_files_tenant_created", "openai_files", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "openai_batches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("input_file_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("completion_window", sa.String(length=8), nullable=False),
        sa.Column(
            "line_errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "chat_lines",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("output_file_id", sa.String(length=64), nullable=True),
        sa.Column("error_file_id", sa.String(length=64), nullable=True),
        sa.Column("files_made_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["id"], ["batches.id"], name="fk_openai_batches_batch"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_openai_batches_tenant"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_openai_batches_tenant_created", "openai_batches", ["tenant_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_openai_batches_tenant_created", table_name="openai_batches")
    op.drop_table("openai_batches")
    op.drop_index("ix_openai_files_tenant_created", table_name="openai_files")
    op.drop_table("openai_files")
