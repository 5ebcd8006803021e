"""Weekly quiet windows learned from repeated false alarms (issue 20): ``feedback`` gets
``window_start_s`` and ``window_s`` (both empty for an alarm-level raise).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("window_start_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("window_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("window_s")
        batch.drop_column("window_start_s")
