"""The ``devices`` table: each device's lifecycle (online/offline and why, last seen, desired and
reported config), kept by ``rules.lifecycle`` (issue 16.3).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("since", sa.Float(), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=True),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.Column("dropped_samples", sa.Integer(), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.Column("last_event_severity", sa.String(length=16), nullable=True),
        sa.Column("last_event_at", sa.Float(), nullable=True),
        sa.Column("desired_json", sa.Text(), nullable=False),
        sa.Column("reported_json", sa.Text(), nullable=False),
        sa.Column("reported_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "device_id"),
    )


def downgrade() -> None:
    op.drop_table("devices")
