"""Incidents opened by the peer detector (issue 20): ``incident_flags``, one row per device
flagged unlike its peers; enough of one cohort within the window open a fleet incident.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "incident_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("detector", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_incident_flags_device_id"), "incident_flags", ["device_id"])
    op.create_index(op.f("ix_incident_flags_at"), "incident_flags", ["at"])
    op.create_index(op.f("ix_incident_flags_incident_id"), "incident_flags", ["incident_id"])


def downgrade() -> None:
    for column in ("incident_id", "at", "device_id"):
        op.drop_index(op.f(f"ix_incident_flags_{column}"), table_name="incident_flags")
    op.drop_table("incident_flags")
