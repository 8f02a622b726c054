"""Hourly spend rollups (`llm_usage_hourly`), the final-attempt mark on `llm_requests`, and
that table's indexes fitted to the queries.

Revision ID: 0005_spend
Revises: 0004_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_spend"
down_revision = "0004_sessions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 10)
# Frozen copy of spend/buckets.py's column names at this revision (16 buckets each).
HISTOGRAM = [f"latency_h{i:02d}" for i in range(16)] + [f"ttft_h{i:02d}" for i in range(16)]


def upgrade() -> None:
    with op.batch_alter_table("llm_requests") as batch:
        batch.add_column(sa.Column("final_attempt", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("fallback", sa.Boolean(), nullable=True))
    # Indexes fitted to the queries: totals per provider/model now read the rollup; keyset
    # pages order by (created_at, id); workflow and trace views read raw rows by time.
    op.drop_index("ix_llm_requests_provider_created_at", table_name="llm_requests")
    op.drop_index("ix_llm_requests_model_created_at", table_name="llm_requests")
    op.drop_index("ix_llm_requests_created_at", table_name="llm_requests")
    op.create_index("ix_llm_requests_created_at", "llm_requests", ["created_at", "id"])
    op.create_index(
        "ix_llm_requests_workflow_created_at", "llm_requests", ["workflow_id", "created_at"]
    )
    op.create_index("ix_llm_requests_trace_created_at", "llm_requests", ["trace_id", "created_at"])
    counters = [
        "calls",
        "attempts",
        "fallback_calls",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
    ]
    op.create_table(
        "llm_usage_hourly",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in counters),
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
        "uq_llm_usage_hourly_bucket",
        "llm_usage_hourly",
        ["bucket_start", "provider", "model", "source", "actor", "status"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_llm_usage_hourly_bucket", table_name="llm_usage_hourly")
    op.drop_table("llm_usage_hourly")
    op.drop_index("ix_llm_requests_trace_created_at", table_name="llm_requests")
    op.drop_index("ix_llm_requests_workflow_created_at", table_name="llm_requests")
    op.drop_index("ix_llm_requests_created_at", table_name="llm_requests")
    op.create_index("ix_llm_requests_created_at", "llm_requests", ["created_at"])
    op.create_index(
        "ix_llm_requests_provider_created_at", "llm_requests", ["provider", "created_at"]
    )
    op.create_index("ix_llm_requests_model_created_at", "llm_requests", ["model", "created_at"])
    with op.batch_alter_table("llm_requests") as batch:
        batch.drop_column("fallback")
        batch.drop_column("final_attempt")
