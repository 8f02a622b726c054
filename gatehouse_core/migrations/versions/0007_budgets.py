"""Monthly budgets, fired alerts and their webhook deliveries.

Revision ID: 0007_budgets
Revises: 0006_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_budgets"
down_revision = "0006_tokens"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 10)


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_value", sa.String(200), nullable=False),
        sa.Column("monthly_usd", MONEY, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
    )
    op.create_index("uq_budgets_scope", "budgets", ["scope", "scope_value"], unique=True)
    op.create_table(
        "alerts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(300), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("fired_at", TS, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
    )
    op.create_index("uq_alerts_rule_window", "alerts", ["rule", "window_start"], unique=True)
    op.create_index("ix_alerts_fired_at", "alerts", ["fired_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", BIGID, nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_alert_id", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_fired_at", table_name="alerts")
    op.drop_index("uq_alerts_rule_window", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("uq_budgets_scope", table_name="budgets")
    op.drop_table("budgets")
