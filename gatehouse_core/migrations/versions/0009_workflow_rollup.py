"""The hourly rollup by workflow (`llm_usage_hourly_workflow`): the same measures as
`llm_usage_hourly` with `workflow_id` as one more dimension, so grouping or filtering by
workflow reads rollup rows instead of every raw row of the range.

Existing audit rows are not folded in here (a migration should not carry the rollup's code):
after upgrading a database that holds them, run `gatehouse rollups rebuild --since 365d`
once, as after 0005.

Revision ID: 0009_workflow_rollup
Revises: 0008_reconcile
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_workflow_rollup"
down_revision = "0008_reconcile"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 10)
# Frozen copy of spend/buckets.py's column names at this revision (16 buckets each).
HISTOGRAM = [f"latency_h{i:02d}" for i in range(16)] + [f"ttft_h{i:02d}" for i in range(16)]
COUNTERS = [
    "calls",
    "attempts",
    "fallback_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
]
KEY = ["bucket_start", "workflow_id", "provider", "model", "source", "actor", "status"]


def upgrade() -> None:
    op.create_table(
        "llm_usage_hourly_workflow",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS),
        sa.Column("cost_usd", MONEY, nullable=False),
        sa.Column("cost_reported_usd", MONEY, nullable=False),
        sa.Column("cost_estimated_usd", MONEY, nullable=False),
        sa.Column("latency_ms_sum", sa.Double(), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("ttft_ms_sum", sa.Double(), nullable=False),
        sa.Column("ttft_count", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in HISTOGRAM),
    )
    op.create_index(
        "uq_llm_usage_hourly_workflow_bucket", "llm_usage_hourly_workflow", KEY, unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_llm_usage_hourly_workflow_bucket", table_name="llm_usage_hourly_workflow")
    op.drop_table("llm_usage_hourly_workflow")
