"""The tables other packages keep in the case database: API tokens and dead letters.

``forewarn.auth`` (``api_tokens``, since before migrations) and ``core.dead_letter``
(``dead_letters``, ``dead_letter_counts``) made them with their own ``create_all``; a database
may already have them, so each is made only where missing. Their packages still create them on
a database that :func:`rules.db.connect` did not open.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _missing(table: str) -> bool:
    return table not in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    if _missing("api_tokens"):
        op.create_table(
            "api_tokens",
            sa.Column("key", sa.String(length=12), nullable=False),
            sa.Column("secret_sha256", sa.String(length=64), nullable=False),
            sa.Column("tenant", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("revoked_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index(op.f("ix_api_tokens_tenant"), "api_tokens", ["tenant"], unique=False)
    if _missing("dead_letter_counts"):
        op.create_table(
            "dead_letter_counts",
            sa.Column("reason", sa.String(length=64), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("reason"),
        )
    if _missing("dead_letters"):
        op.create_table(
            "dead_letters",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("ts", sa.Float(), nullable=False),
            sa.Column("reason", sa.String(length=64), nullable=False),
            sa.Column("topic", sa.String(length=256), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.Column("payload_head", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_dead_letters_reason"), "dead_letters", ["reason"], unique=False)
        op.create_index(op.f("ix_dead_letters_ts"), "dead_letters", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_ts"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_reason"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("dead_letter_counts")
    op.drop_index(op.f("ix_api_tokens_tenant"), table_name="api_tokens")
    op.drop_table("api_tokens")
