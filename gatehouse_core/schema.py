"""The database tables, as SQLAlchemy 2 typed ORM classes.

Alembic migrations in `migrations/versions/` create exactly these; a test compares the
migrated database with this metadata so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .spend.buckets import LATENCY_COLUMNS, TTFT_COLUMNS


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite stores text; without a zone the values sort and compare correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(20, 10, asdecimal=False)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class SystemSetting(Base):
    """Runtime configuration as JSON documents; provider configs live under `llm_providers`."""

    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class ProviderSecret(Base):
    """One encrypted API key per provider; never plaintext, kept apart from the JSON config.

    The optional `management_*` columns hold the provider's OpenRouter *management* key (for
    the analytics ledger, `spend/reconcile.py`), sealed by the same SecretBox (0008).
    """

    __tablename__ = "provider_secrets"

    provider_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    key_fingerprint: Mapped[str] = mapped_column(String(32))
    key_prefix: Mapped[str] = mapped_column(String(16), default="")
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    management_ciphertext: Mapped[str | None] = mapped_column(Text)
    management_key_fingerprint: Mapped[str | None] = mapped_column(String(32))
    management_key_prefix: Mapped[str | None] = mapped_column(String(16))
    management_last4: Mapped[str | None] = mapped_column(String(4))
    management_rotated_at: Mapped[datetime | None]


class SettingsAudit(Base):
    """Every configuration change: who, what, and the before/after JSON with secrets masked."""

    __tablename__ = "settings_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LLMRequest(Base):
    """One row per upstream attempt; the attempts of one call share `request_id`."""

    __tablename__ = "llm_requests"
    __table_args__ = (
        # Fitted to the queries (0005): time ranges, keyset pages on (created_at, id), retention;
        # workflow/trace views, which are not rollup dimensions. Totals per provider or model
        # read llm_usage_hourly, so no index leads with those columns any more.
        Index("ix_llm_requests_created_at", "created_at", "id"),
        Index("ix_llm_requests_workflow_created_at", "workflow_id", "created_at"),
        Index("ix_llm_requests_trace_created_at", "trace_id", "created_at"),
        # One row per attempt: the database itself refuses a duplicate after a retried batch.
        Index("uq_llm_requests_request_attempt", "request_id", "attempt", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    model_used: Mapped[str | None] = mapped_column(String(200))
    generation_id: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Money)
    cost_source: Mapped[str] = mapped_column(String(16), default="unknown")
    latency_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    trace_id: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(200))
    # True on the one row per call whose outcome the caller saw (the last attempt); None on
    # rows written before 0005. Calls are counted on these rows, attempts on all rows.
    final_attempt: Mapped[bool | None] = mapped_column(Boolean)
    # On the final row: the call was answered (or failed) by a provider other than the first tried.
    fallback: Mapped[bool | None] = mapped_column(Boolean)


class _UsageMeasures:
    """The measures both hourly rollups keep (what they mean: spend/rollups.py)."""

    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    fallback_calls: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Money, default=0)
    cost_reported_usd: Mapped[float] = mapped_column(Money, default=0)
    cost_estimated_usd: Mapped[float] = mapped_column(Money, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(default=0.0)
    latency_count: Mapped[int] = mapped_column(BigInteger, default=0)
    ttft_ms_sum: Mapped[float] = mapped_column(default=0.0)
    ttft_count: Mapped[int] = mapped_column(BigInteger, default=0)


# The histogram columns, one per bucket of spend/buckets.py (kept out of the class body so the
# bound list stays the one place that says how many there are).
for _column in (*LATENCY_COLUMNS, *TTFT_COLUMNS):
    setattr(_UsageMeasures, _column, mapped_column(_column, BigInteger, default=0, nullable=False))


class UsageHourly(_UsageMeasures, Base):
    """Hourly rollup of `llm_requests`, maintained by the audit writer in each batch's transaction.

    One row per UTC hour × provider × requested model × source × actor × status; a missing
    source or actor is stored as '' so the unique key holds on every database. `calls` counts
    final attempts, `attempts` every row; latency/TTFT histograms use `spend/buckets.py`.
    """

    __tablename__ = "llm_usage_hourly"
    __table_args__ = (
        Index(
            "uq_llm_usage_hourly_bucket",
            "bucket_start",
            "provider",
            "model",
            "source",
            "actor",
            "status",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bucket_start: Mapped[datetime]
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))


class UsageHourlyWorkflow(_UsageMeasures, Base):
    """The same rollup with `workflow_id` as one more dimension ('' when missing), for the
    views that group or filter by workflow (0009); summed over workflows it equals
    `llm_usage_hourly`. Kept apart so the other views read the smaller table."""

    __tablename__ = "llm_usage_hourly_workflow"
    __table_args__ = (
        Index(
            "uq_llm_usage_hourly_workflow_bucket",
            "bucket_start",
            "workflow_id",
            "provider",
            "model",
            "source",
            "actor",
            "status",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bucket_start: Mapped[datetime]
    workflow_id: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))


class CatalogModel(Base):
    """A model and its per-token prices (USD), from a provider's `/models` or the offline defaults."""

    __tablename__ = "model_catalog"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    context_length: Mapped[int | None] = mapped_column(Integer)
    prompt_price: Mapped[float | None]
    completion_price: Mapped[float | None]
    cache_read_price: Mapped[float | None]
    request_price: Mapped[float | None]
    source: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A console user; passwords are stored as salted scrypt hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None]


class ApiToken(Base):
    """An API token for the HTTP API: only its SHA-256 hash is stored, never the token itself.

    `prefix` is the short public start of the token (`gh_AbCd`) shown in lists; `models` holds
    fnmatch patterns of allowed model ids (None: any model).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    monthly_usd: Mapped[float | None] = mapped_column(Money)
    rpm: Mapped[int | None] = mapped_column(Integer)
    models: Mapped[list[str] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Budget(Base):
    """A monthly USD budget: global (scope 'global', value '') or per provider, source or actor.

    `action` is 'block' (refuse calls that would exceed it) or 'alert' (never refuse).
    """

    __tablename__ = "budgets"
    __table_args__ = (Index("uq_budgets_scope", "scope", "scope_value", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(200), default="")
    monthly_usd: Mapped[float] = mapped_column(Money)
    action: Mapped[str] = mapped_column(String(8), default="block")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class Alert(Base):
    """One fired alert. The unique (rule, window_start) key makes it fire once per window across
    every process: the INSERT that conflicts lost the race and does not deliver."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_rule_window", "rule", "window_start", unique=True),
        Index("ix_alerts_fired_at", "fired_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(300))
    threshold: Mapped[float | None]
    value: Mapped[float | None]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class AlertDelivery(Base):
    """One webhook POST of an alert (every retry is its own row)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_alert_id", "alert_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(BigId)
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class Reconciliation(Base):
    """Our spend against OpenRouter's ledger for one day × provider × model (`gatehouse
    reconcile`). `day` is a calendar day of `timezone` (GATEHOUSE_TIMEZONE when it ran);
    re-running a day replaces its rows (the unique key). `drift_usd` = openrouter - ours;
    `drift_pct` is relative to OpenRouter's figure (None when that is 0)."""

    __tablename__ = "reconciliations"
    __table_args__ = (
        Index("uq_reconciliations_day", "day", "provider", "model", unique=True),
        Index("ix_reconciliations_checked_at", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date]
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    ours_usd: Mapped[float] = mapped_column(Money, default=0)
    openrouter_usd: Mapped[float] = mapped_column(Money, default=0)
    ours_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    openrouter_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    drift_usd: Mapped[float] = mapped_column(Money, default=0)
    drift_pct: Mapped[float | None]
    corrected_generations: Mapped[int] = mapped_column(Integer, default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Base):
    """A signed-in console browser: only the SHA-256 of its cookie token is stored.

    A row is created at sign-in with a one-time hand-off ticket (also hashed); the browser
    redeems the ticket at `/auth/session`, which sets the cookie and replaces `token_hash`
    with the hash of the cookie's token. `revoked_at` set means signed out for good.
    """

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_expires_at: Mapped[datetime | None]
    username: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    user_agent: Mapped[str | None] = mapped_column(String(300))
    client_address: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(100))


class SigninThrottle(Base):
    """Failed sign-ins counted per client address and per unknown username.

    `key` is a SHA-256 of the kind and value, so a password typed into the username field
    is never stored. Known users are counted in their `users` row.
    """

    __tablename__ = "signin_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None]
