"""OpenRouter ledger reconciliation: a provider's management key and the `reconciliations` table.

Revision ID: 0008_reconcile
Revises: 0007_budgets
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_reconcile"
down_revision = "0007_budgets"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 10)
MANAGEMENT_COLUMNS = (
    ("management_ciphertext", sa.Text()),
    ("management_key_fingerprint", sa.String(32)),
    ("management_key_prefix", sa.String(16)),
    ("management_last4", sa.String(4)),
    ("management_rotated_at", TS),
)


def upgrade() -> None:
    # Nullable columns: SQLite adds them with a plain ALTER TABLE (no table rebuild).
    for name, type_ in MANAGEMENT_COLUMNS:
        op.add_column("provider_secrets", sa.Column(name, type_, nullable=True))
    op.create_table(
        "reconciliations",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("ours_usd", MONEY, nullable=False),
        sa.Column("openrouter_usd", MONEY, nullable=False),
        sa.Column("ours_requests", sa.BigInteger(), nullable=False),
        sa.Column("openrouter_requests", sa.BigInteger(), nullable=False),
        sa.Column("drift_usd", MONEY, nullable=False),
        sa.Column("drift_pct", sa.Double(), nullable=True),
        sa.Column("corrected_generations", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
    )
    op.create_index(
        "uq_reconciliations_day", "reconciliations", ["day", "provider", "model"], unique=True
    )
    op.create_index("ix_reconciliations_checked_at", "reconciliations", ["checked_at"])


def downgrade() -> None:
    op.drop_index("ix_reconciliations_checked_at", table_name="reconciliations")
    op.drop_index("uq_reconciliations_day", table_name="reconciliations")
    op.drop_table("reconciliations")
    with op.batch_alter_table("provider_secrets") as batch:
        for name, _ in reversed(MANAGEMENT_COLUMNS):
            batch.drop_column(name)
