"""Fleet incidents (issue 20): ``incidents`` (many devices of one cohort with cases of one rule,
told once) and ``incident_cases`` (the cases each links).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("cohort", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=400), nullable=True),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("last_joined_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=False),
        sa.Column("customer_policy", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index(op.f("ix_incidents_tenant"), "incidents", ["tenant"])
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])
    op.create_table(
        "incident_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    op.create_index(op.f("ix_incident_cases_incident_id"), "incident_cases", ["incident_id"])
    op.create_index(op.f("ix_incident_cases_device_id"), "incident_cases", ["device_id"])


def downgrade() -> None:
    op.drop_table("incident_cases")
    op.drop_table("incidents")
