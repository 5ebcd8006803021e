"""Weekly quiet windows renewed by their pattern (issue 20): ``feedback`` gets ``renewals``
and ``renewed_at`` (a window whose pattern came back while it was quiet lives on).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("renewals", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("renewed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("renewed_at")
        batch.drop_column("renewals")
