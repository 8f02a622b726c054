"""API tokens: shown once, stored only as a hash, revocable, expiring; every change audited."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from gatehouse_core.errors import NotFound, ValidationError
from gatehouse_core.ratelimit import RateLimiter
from gatehouse_core.schema import ApiToken, LLMRequest, SettingsAudit
from gatehouse_core.tokens import (
    LAST_USE_RESOLUTION,
    VERIFIED_TTL,
    TokenError,
    TokenForbidden,
    TokenLimits,
    TokenRateLimited,
    TokenStore,
    TokenUsage,
    month_start,
    month_to_date_usage,
)


def test_token_is_gh_and_32_random_bytes_urlsafe(engine: Engine) -> None:
    _, token = TokenStore(engine).create("ci", "operator", actor="alice")
    assert token.startswith("gh_")
    body = token.removeprefix("gh_")
    assert len(body) == 43  # 32 bytes, URL-safe base64 without padding
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_only_the_hash_and_a_short_prefix_are_stored(engine: Engine) -> None:
    info, token = TokenStore(engine).create("ci", "operator", actor="alice")
    with engine.connect() as conn:
        row = conn.execute(select(ApiToken.__table__)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in [str(v) for v in row]
    assert row.prefix == token[:7] and info.to_json()["prefix"] == token[:7] + "…"


def test_verify_returns_the_token_and_its_actor(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "viewer", actor="alice", rpm=5, models="openai/*")
    info = store.verify(token)
    assert (info.name, info.role, info.rpm, info.models) == ("ci", "viewer", 5, ("openai/*",))
    assert info.actor == "token:ci"
    assert store.get("ci").last_used_at is not None


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _set_role(engine: Engine, name: str, role: str) -> None:
    """A change made behind the store's back (another process, say)."""
    with engine.begin() as conn:
        conn.execute(ApiToken.__table__.update().where(ApiToken.name == name).values(role=role))


def test_a_token_verified_a_moment_ago_is_trusted_without_a_read_until_the_ttl(
    engine: Engine,
) -> None:
    clock = _Clock()
    store = TokenStore(engine, clock=clock)
    _, token = store.create("ci", "operator", actor="alice")
    assert store.cached(token) is None  # never verified in this process yet

    store.verify(token)
    _set_role(engine, "ci", "viewer")

    assert store.cached(token).role == "operator"  # no database read: the earlier answer
    clock.now += VERIFIED_TTL
    assert store.cached(token) is None  # stale: the caller verifies again
    assert store.verify(token).role == "viewer"


def test_a_revoke_by_any_store_in_the_process_ends_the_cached_token_at_once(
    engine: Engine,
) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "operator", actor="alice")
    store.verify(token)
    assert store.cached(token) is not None

    TokenStore(engine).revoke("ci", actor="bob")  # e.g. the console's page, same process

    assert store.cached(token) is None
    with pytest.raises(TokenError) as caught:
        store.verify(token)
    assert caught.value.code == "token_revoked"


def test_a_cached_token_past_its_expiry_or_due_a_last_use_stamp_is_read_again(
    engine: Engine,
) -> None:
    clock = _Clock()
    store = TokenStore(engine, clock=clock)
    _, token = store.create("ci", "operator", actor="alice", expires="1h")
    store.verify(token)
    clock.now += timedelta(hours=1)
    assert store.cached(token) is None  # expired: verify says so

    other = TokenStore(engine, clock=clock)  # this store has never stamped the token's use
    _, fresh = store.create("cd", "operator", actor="alice")
    store.verify(fresh)
    assert store.cached(fresh) is not None
    assert other.cached(fresh) is None
    assert LAST_USE_RESOLUTION > VERIFIED_TTL  # so a hit can skip the stamp


def test_a_wrong_or_foreign_token_is_never_cached(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "operator", actor="alice")
    store.verify(token)
    assert store.cached(token[:-2] + "xx") is None
    assert store.cached("sk-or-v1-x") is None and store.cached(None) is None


@pytest.mark.parametrize(
    ("presented", "code"),
    [(None, "missing_token"), ("", "missing_token"), ("sk-or-v1-x", "invalid_token")],
)
def test_missing_or_foreign_token_is_refused(engine: Engine, presented, code) -> None:
    with pytest.raises(TokenError) as caught:
        TokenStore(engine).verify(presented)
    assert caught.value.code == code


def test_unknown_token_is_refused(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "admin", actor="alice")
    with pytest.raises(TokenError) as caught:
        store.verify(token[:-2] + "xx")
    assert caught.value.code == "invalid_token"


def test_revoked_token_is_refused_at_once(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "admin", actor="alice")
    store.verify(token)
    store.revoke("ci", actor="bob")
    with pytest.raises(TokenError) as caught:
        store.verify(token)
    assert caught.value.code == "token_revoked"
    assert store.get("ci").status(datetime.now(UTC)) == "revoked"


def test_expired_token_is_refused(engine: Engine) -> None:
    now = datetime.now(UTC)
    store = TokenStore(engine, clock=lambda: now)
    _, token = store.create("ci", "admin", actor="alice", expires="30d")
    assert store.get("ci").expires_at == now + timedelta(days=30)
    later = TokenStore(engine, clock=lambda: now + timedelta(days=30, seconds=1))
    with pytest.raises(TokenError) as caught:
        later.verify(token)
    assert caught.value.code == "token_expired"


def test_bad_input_names_every_field_and_saves_nothing(engine: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        TokenStore(engine).create(
            "Bad Name!", "root", actor="a", monthly_usd=-1, rpm=0, models=" , ", expires="soon"
        )
    assert set(caught.value.errors) == {"name", "role", "monthly_usd", "rpm", "models", "expires"}
    assert TokenStore(engine).list() == []


def test_names_are_unique_even_after_revocation(engine: Engine) -> None:
    store = TokenStore(engine)
    store.create("ci", "admin", actor="a")
    store.revoke("ci", actor="a")
    with pytest.raises(ValidationError) as caught:
        store.create("ci", "admin", actor="a")
    assert "already exists" in caught.value.errors["name"]


def test_revoking_an_unknown_token_says_so(engine: Engine) -> None:
    with pytest.raises(NotFound, match="tokens list"):
        TokenStore(engine).revoke("nope", actor="a")


def test_create_and_revoke_are_audited_without_secrets(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create("ci", "operator", actor="alice", monthly_usd=5)
    store.revoke("ci", actor="bob")
    with engine.connect() as conn:
        rows = list(conn.execute(select(SettingsAudit.__table__).order_by(SettingsAudit.id)))
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("alice", "token.create", "ci"),
        ("bob", "token.revoke", "ci"),
    ]
    digest = hashlib.sha256(token.encode()).hexdigest()
    for row in rows:
        assert token not in str(row) and digest not in str(row)
    assert rows[0].after["monthly_usd"] == 5 and rows[1].after["status"] == "revoked"


def test_model_patterns_use_fnmatch(engine: Engine) -> None:
    store = TokenStore(engine)
    _, token = store.create(
        "ci", "operator", actor="a", models="openai/*,anthropic/claude-sonnet-4"
    )
    info = store.verify(token)
    limits = TokenLimits(None)
    limits.check_model(info, "openai/gpt-4o")
    limits.check_model(info, "anthropic/claude-sonnet-4")
    with pytest.raises(TokenForbidden, match="openai/\\*"):
        limits.check_model(info, "anthropic/claude-opus-4")


def test_rpm_is_counted_per_token(engine: Engine) -> None:
    store = TokenStore(engine)
    limited = store.verify(store.create("a", "operator", actor="x", rpm=2)[1])
    other = store.verify(store.create("b", "operator", actor="x", rpm=2)[1])
    limits = TokenLimits(RateLimiter(sleep=lambda s: None), window_seconds=60)
    limits.take_rpm(limited)
    limits.take_rpm(limited)
    with pytest.raises(TokenRateLimited) as caught:
        limits.take_rpm(limited)
    assert caught.value.retry_after == 60
    limits.take_rpm(other)  # another token has its own count


def test_rpm_is_shared_through_redis(engine: Engine, redis_url: str, namespace: str) -> None:
    store = TokenStore(engine)
    info = store.verify(store.create("a", "operator", actor="x", rpm=1)[1])
    first = TokenLimits(RateLimiter(redis_url, namespace=namespace))
    second = TokenLimits(RateLimiter(redis_url, namespace=namespace))
    first.take_rpm(info)
    with pytest.raises(TokenRateLimited):
        second.take_rpm(info)  # another process, the same budget


def _spend(engine: Engine, actor: str, cost: float, when: datetime, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            LLMRequest.__table__.insert(),
            [
                {
                    "request_id": uuid.uuid4().hex,
                    "attempt": 1,
                    "created_at": when,
                    "provider": "p",
                    "model": "m/m",
                    "status": "ok",
                    "cost_usd": cost,
                    "cost_source": "provider",
                    "actor": actor,
                }
                for i in range(n)
            ],
        )


def test_month_to_date_usage_counts_calls_and_cost_per_token(engine: Engine) -> None:
    now = datetime(2026, 12, 15, 12, tzinfo=UTC)
    _spend(engine, "token:ci", 0.25, now, 2)
    _spend(engine, "token:ci", 4.0, month_start(now) - timedelta(days=1), 1)  # last month
    _spend(engine, "token:bot", 0.5, now, 1)
    _spend(engine, "alice", 9.0, now, 1)  # not a token
    usage = month_to_date_usage(engine, now)
    assert usage == {"ci": TokenUsage(2, 0.5), "bot": TokenUsage(1, 0.5)}
