"""Gateway: llm_requests (one row per attempt) and model_catalog (prices).

Revision ID: 0002_gateway
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_gateway"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "llm_requests",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_used", sa.String(200), nullable=True),
        sa.Column("generation_id", sa.String(128), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=True),
        sa.Column("cost_source", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        sa.Column("trace_id", sa.String(200), nullable=True),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
    )
    op.create_index("ix_llm_requests_created_at", "llm_requests", ["created_at"])
    op.create_index(
        "ix_llm_requests_provider_created_at", "llm_requests", ["provider", "created_at"]
    )
    op.create_index("ix_llm_requests_model_created_at", "llm_requests", ["model", "created_at"])
    op.create_index(
        "uq_llm_requests_request_attempt", "llm_requests", ["request_id", "attempt"], unique=True
    )
    op.create_table(
        "model_catalog",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.Column("prompt_price", sa.Double(), nullable=True),
        sa.Column("completion_price", sa.Double(), nullable=True),
        sa.Column("cache_read_price", sa.Double(), nullable=True),
        sa.Column("request_price", sa.Double(), nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("refreshed_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_catalog")
    op.drop_table("llm_requests")
