"""Console sessions (gatehouse_core.sessions): hashing, hand-off, expiry, revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gatehouse_core import settings
from gatehouse_core.auth import UserStore
from gatehouse_core.db import make_engine, transaction
from gatehouse_core.schema import ConsoleSession, SettingsAudit
from gatehouse_core.sessions import SessionPolicy, SessionStore, token_hash

PASSWORD = "correct horse"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> SessionStore:
    """On SQLite and on PostgreSQL."""
    policy = SessionPolicy(idle=timedelta(hours=1), max_age=timedelta(hours=3))
    return SessionStore(make_engine(db_url), clock=clock, policy=policy)


def signed_in(store: SessionStore, username: str = "alice") -> tuple[int, str]:
    """A session whose ticket was redeemed: (id, cookie token)."""
    new = store.create(username, "admin", user_agent="pytest", client_address="127.0.0.1")
    token = store.redeem_ticket(new.ticket)
    assert token
    return new.info.id, token


def test_only_hashes_are_stored(store: SessionStore) -> None:
    new = store.create("alice", "admin")
    token = store.redeem_ticket(new.ticket)
    with transaction(store.engine) as s:
        row = s.scalars(select(ConsoleSession)).one()
        dumped = str({c.name: getattr(row, c.name) for c in ConsoleSession.__table__.columns})
    assert row.token_hash == token_hash(token)
    assert token not in dumped and new.ticket not in dumped


def test_ticket_is_single_use_and_short_lived(store: SessionStore, clock: Clock) -> None:
    new = store.create("alice", "admin")
    assert store.redeem_ticket(new.ticket)
    assert store.redeem_ticket(new.ticket) is None
    late = store.create("alice", "admin")
    clock.advance(seconds=61)
    assert store.redeem_ticket(late.ticket) is None
    assert store.redeem_ticket("") is None and store.redeem_ticket("made-up") is None


def test_cookie_token_resolves_to_its_user(store: SessionStore) -> None:
    session_id, token = signed_in(store)
    info = store.resolve(token)
    assert info is not None and (info.id, info.username, info.role) == (
        session_id,
        "alice",
        "admin",
    )
    assert info.user_agent == "pytest" and info.client_address == "127.0.0.1"
    assert store.resolve(token + "x") is None and store.resolve(None) is None


def test_idle_session_expires_and_use_keeps_it_alive(store: SessionStore, clock: Clock) -> None:
    _, token = signed_in(store)
    for _ in range(3):  # 3 x 50 min of activity: longer than the idle limit in total
        clock.advance(minutes=50)
        assert store.resolve(token) is not None
    clock.advance(minutes=61)
    assert store.resolve(token) is None


def test_absolute_lifetime_ends_even_a_busy_session(store: SessionStore, clock: Clock) -> None:
    _, token = signed_in(store)
    for _ in range(5):
        clock.advance(minutes=35)
        assert store.resolve(token) is not None
    clock.advance(minutes=6)  # 3 h 01 min after sign-in
    assert store.resolve(token) is None


def test_revoked_session_is_refused_everywhere(store: SessionStore, db_url: str) -> None:
    session_id, token = signed_in(store)
    other_replica = SessionStore(make_engine(db_url), policy=store.policy, clock=store._clock)
    assert other_replica.resolve(token) is not None
    assert store.revoke(session_id, actor="alice")
    assert other_replica.resolve(token) is None
    assert store.resolve_id(session_id) is None
    assert not store.revoke(session_id, actor="alice")


def test_sign_out_everywhere_ends_only_that_users_sessions(store: SessionStore) -> None:
    tokens = [signed_in(store, "alice")[1] for _ in range(3)]
    _, bob = signed_in(store, "bob")
    assert len(store.list_for("alice")) == 3
    assert store.revoke_user("alice", actor="root", reason="admin") == 3
    assert all(store.resolve(t) is None for t in tokens)
    assert store.resolve(bob) is not None
    assert store.list_for("alice") == []


def test_sign_in_and_sign_out_are_audited_without_tokens(store: SessionStore) -> None:
    session_id, token = signed_in(store)
    store.revoke_token(token)
    with transaction(store.engine) as s:
        rows = s.scalars(select(SettingsAudit).order_by(SettingsAudit.id)).all()
    assert [r.action for r in rows] == ["session.sign_in", "session.sign_out"]
    assert all(token not in str((r.before, r.after)) for r in rows)


def test_disabling_or_new_password_ends_the_users_sessions(db_url: str, clock: Clock) -> None:
    engine = make_engine(db_url)
    users, sessions = UserStore(engine), SessionStore(engine, clock=clock)
    users.create("root", PASSWORD, "admin", actor="t")
    users.create("bob", PASSWORD, "viewer", actor="t")
    _, token = signed_in(sessions, "bob")
    users.set_password("bob", "another pass", actor="root")
    assert sessions.resolve(token) is None
    _, token = signed_in(sessions, "bob")
    users.set_disabled("bob", True, actor="root")
    assert sessions.resolve(token) is None


def test_user_agent_is_cut_and_made_printable(store: SessionStore) -> None:
    new = store.create("alice", "admin", user_agent="A\x00B\ud800" + "x" * 500)
    assert new.info.user_agent is not None and len(new.info.user_agent) == 300
    assert new.info.user_agent.startswith("A?B?")


@pytest.mark.parametrize(
    ("raw", "seconds"), [("90", 90), ("45s", 45), ("30m", 1800), ("8h", 28800), ("7d", 604800)]
)
def test_session_durations_from_the_environment(
    raw: str, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_SESSION_IDLE", raw)
    assert SessionPolicy.from_settings().idle == timedelta(seconds=seconds)


@pytest.mark.parametrize("raw", ["soon", "-5m", "0", "8w"])
def test_bad_session_duration_names_the_setting(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEHOUSE_SESSION_MAX", raw)
    with pytest.raises(settings.SettingError, match="GATEHOUSE_SESSION_MAX=.* is not a duration"):
        SessionPolicy.from_settings()


def test_defaults_are_eight_hours_idle_and_seven_days_max() -> None:
    assert SessionPolicy.from_settings() == SessionPolicy(timedelta(hours=8), timedelta(days=7))
