"""Console sessions and sign-in throttling.

Revision ID: 0004_sessions
Revises: 0003_users
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sessions"
down_revision = "0003_users"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("ticket_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("ticket_expires_at", TS, nullable=True),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
    )
    op.create_index("ix_console_sessions_username", "console_sessions", ["username"])
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("signin_throttle")
    op.drop_index("ix_console_sessions_username", table_name="console_sessions")
    op.drop_table("console_sessions")
