"""Customers in the loop (issue 19): ``customer_answers`` from the status page, and tickets that
come in from a helpdesk (external id, linked case, subject, status).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "customer_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("answer_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("answer_key"),
    )
    op.create_index("ix_customer_answers_case_id", "customer_answers", ["case_id"])
    op.create_index("ix_customer_answers_kind", "customer_answers", ["kind"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tenant", sa.String(length=64), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("subject", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=False,
                                   server_default="open"))
        batch.add_column(sa.Column("updated_at", sa.Float(), nullable=True))
        batch.create_unique_constraint("uq_tickets_external_id", ["external_id"])
        batch.create_index("ix_tickets_case_id", ["case_id"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_case_id")
        batch.drop_constraint("uq_tickets_external_id", type_="unique")
        for column in ("updated_at", "status", "subject", "tenant", "case_id", "external_id"):
            batch.drop_column(column)
    op.drop_index("ix_customer_answers_kind", "customer_answers")
    op.drop_index("ix_customer_answers_case_id", "customer_answers")
    op.drop_table("customer_answers")
