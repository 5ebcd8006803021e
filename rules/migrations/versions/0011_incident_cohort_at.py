"""When a fleet incident became its cohort's (issue 20): ``incidents.cohort_at``, its
``opened_at`` unless a release's, a batch's or a region's cluster absorbed it after it opened
as a model's.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("cohort_at", sa.Float(), nullable=True))
    op.execute("UPDATE incidents SET cohort_at = opened_at")


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("cohort_at")
