"""Team notices about the service itself (issue 23: ingest back-pressure): a notice may belong
to no case, so ``notices.case_id`` may be NULL.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("case_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE case_id IS NULL")
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
