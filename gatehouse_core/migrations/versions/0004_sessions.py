"""Console sessions and sign-in throttling (filled in by the console-server work).

Revision ID: 0004_sessions
Revises: 0003_users
"""

revision = "0004_sessions"
down_revision = "0003_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
