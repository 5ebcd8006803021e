"""Firmware rollout history (issue 20): ``firmware_changes``, one row each time a device reports
a firmware version it had not reported before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "firmware_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("firmware", sa.String(length=64), nullable=False),
        sa.Column("previous", sa.String(length=64), nullable=True),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_firmware_changes_tenant"), "firmware_changes", ["tenant"])


def downgrade() -> None:
    op.drop_index(op.f("ix_firmware_changes_tenant"), table_name="firmware_changes")
    op.drop_table("firmware_changes")
