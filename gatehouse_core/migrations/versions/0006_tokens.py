"""Placeholder for the API-token migration (branch `api` ships the real one).

Revision ID: 0006_tokens
Revises: 0005_spend
"""

revision = "0006_tokens"
down_revision = "0005_spend"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
