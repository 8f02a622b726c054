"""Hourly spend rollups and the final-attempt mark (filled in by the cost-review work).

Revision ID: 0005_spend
Revises: 0004_sessions
"""

revision = "0005_spend"
down_revision = "0004_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
