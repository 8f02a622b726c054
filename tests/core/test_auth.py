"""Users, roles, password hashing, sign-in lockout and SSO role mapping (gatehouse_core.auth)."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gatehouse_core import auth
from gatehouse_core.auth import (
    PERMISSION_HELP,
    PERMISSIONS,
    LockoutPolicy,
    UserStore,
    can,
    hash_password,
    needs_rehash,
    resolve_sso_role,
    verify_password,
)
from gatehouse_core.db import make_engine, transaction
from gatehouse_core.errors import AccountLocked, AuthError, ConfigError, NotFound, ValidationError
from gatehouse_core.schema import SettingsAudit, SigninThrottle, User

PASSWORD = "correct horse"


class Clock:
    """A settable UTC clock for lockout windows."""

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
def store(clock: Clock) -> UserStore:
    """On this test's SQLite database."""
    return UserStore(make_engine(), clock=clock)


@pytest.fixture
def db_store(db_url: str, clock: Clock) -> UserStore:
    """On SQLite and on PostgreSQL: for behaviour that depends on the database."""
    return UserStore(make_engine(db_url), clock=clock)


def _old_hash(password: str, n: int = 1024) -> str:
    """A valid hash with weaker parameters than today's, as an older release wrote it."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    salt_b64, digest_b64 = (
        base64.urlsafe_b64encode(x).decode().rstrip("=") for x in (salt, digest)
    )
    return f"scrypt$n={n},r=8,p=1${salt_b64}${digest_b64}"


def _audit(store: UserStore) -> list[SettingsAudit]:
    with transaction(store.engine) as s:
        return list(s.scalars(select(SettingsAudit).order_by(SettingsAudit.id)))


# ---- roles -------------------------------------------------------------------------------


def test_admin_may_do_everything_there_is() -> None:
    assert PERMISSIONS["admin"] == frozenset(PERMISSION_HELP)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("operator", {"playground", "models", "dashboards"}, {"providers", "models.refresh"}),
        ("viewer", {"models", "dashboards"}, {"providers", "playground", "models.refresh"}),
    ],
)
def test_role_permissions(role: str, allowed: set[str], refused: set[str]) -> None:
    assert all(can(role, p) for p in allowed)
    assert not any(can(role, p) for p in refused)


def test_unknown_role_may_do_nothing_and_unknown_permission_is_a_bug() -> None:
    assert not can("root", "models")
    with pytest.raises(ValueError, match="unknown permission"):
        can("admin", "everything")


# ---- hashing -----------------------------------------------------------------------------


def test_hash_is_self_describing_salted_scrypt() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$n=131072,r=8,p=1$")  # 2**17
    assert first != second  # random salt
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password("correct horse!", first)


def test_hash_with_older_parameters_still_verifies_and_asks_for_rehash() -> None:
    old = _old_hash(PASSWORD)
    assert verify_password(PASSWORD, old)
    assert needs_rehash(old)
    assert not needs_rehash(hash_password(PASSWORD))


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plaintext",
        "bcrypt$n=16384,r=8,p=1$c2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$n=1000,r=8,p=1$c2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0",  # n not a power of two
        "scrypt$n=1073741824,r=8,p=1$c2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0",  # absurd cost
        "scrypt$n=16384,r=8$c2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
    ],
)
def test_malformed_or_hostile_hash_never_verifies(encoded: str) -> None:
    assert not verify_password(PASSWORD, encoded)


# ---- users -------------------------------------------------------------------------------


def test_create_reports_every_bad_field_and_stores_nothing(store: UserStore) -> None:
    with pytest.raises(ValidationError) as err:
        store.create("-bad name-", "short", "superuser", actor="t")
    assert set(err.value.errors) == {"username", "password", "role"}
    assert "at least 8 characters" in err.value.errors["password"]
    assert not store.has_users()


def test_username_is_normalized_and_unique(db_store: UserStore) -> None:
    assert db_store.create("  Alice ", PASSWORD, "viewer", actor="t").username == "alice"
    with pytest.raises(ValidationError, match="already exists"):
        db_store.create("ALICE", PASSWORD, "admin", actor="t")
    assert [u.username for u in db_store.list_users()] == ["alice"]


def test_first_admin_only_while_no_user_exists(db_store: UserStore) -> None:
    assert not db_store.has_users()
    admin = db_store.create_first_admin("root-admin", PASSWORD)
    assert (admin.role, db_store.has_users()) == ("admin", True)
    with pytest.raises(AuthError, match="already exists; sign in"):
        db_store.create_first_admin("second", PASSWORD)
    assert [u.username for u in db_store.list_users()] == ["root-admin"]


def test_changes_are_audited_without_the_password(db_store: UserStore) -> None:
    db_store.create("alice", PASSWORD, "admin", actor="cli-user")
    db_store.create("bob", PASSWORD, "viewer", actor="alice")
    db_store.set_password("bob", "another password", actor="alice")
    db_store.set_disabled("bob", True, actor="alice")
    rows = _audit(db_store)
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("cli-user", "user.create", "alice"),
        ("alice", "user.create", "bob"),
        ("alice", "user.set_password", "bob"),
        ("alice", "user.disable", "bob"),
    ]
    dumped = repr([(r.before, r.after) for r in rows])
    assert "password" not in dumped and "scrypt" not in dumped and PASSWORD not in dumped
    assert rows[-1].after == {"username": "bob", "role": "viewer", "disabled": True}


def test_last_enabled_admin_cannot_be_disabled(db_store: UserStore) -> None:
    db_store.create("alice", PASSWORD, "admin", actor="t")
    with pytest.raises(ConfigError, match="last enabled admin"):
        db_store.set_disabled("alice", True, actor="t")
    db_store.create("carol", PASSWORD, "admin", actor="t")
    assert db_store.set_disabled("alice", True, actor="t").disabled


def test_unknown_user_is_not_found(store: UserStore) -> None:
    with pytest.raises(NotFound, match="gatehouse users list"):
        store.set_password("ghost", PASSWORD, actor="t")


# ---- sign-in -----------------------------------------------------------------------------


def test_sign_in_records_last_login(store: UserStore, clock: Clock) -> None:
    store.create("alice", PASSWORD, "operator", actor="t")
    user = store.authenticate(" Alice", PASSWORD)
    assert (user.username, user.role, user.last_login_at) == ("alice", "operator", clock.now)


def test_wrong_password_and_unknown_user_get_the_same_answer(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    with pytest.raises(AuthError) as wrong:
        store.authenticate("alice", "nope nope")
    with pytest.raises(AuthError) as unknown:
        store.authenticate("nobody", "nope nope")
    assert str(wrong.value) == str(unknown.value) == "Wrong username or password."


def test_disabled_user_is_refused_with_the_fix(store: UserStore) -> None:
    store.create("alice", PASSWORD, "admin", actor="t")
    store.create("bob", PASSWORD, "viewer", actor="t")
    store.set_disabled("bob", True, actor="alice")
    with pytest.raises(AuthError, match="disabled; ask an admin"):
        store.authenticate("bob", PASSWORD)


def test_five_failures_lock_the_account_and_say_when_to_retry(
    db_store: UserStore, clock: Clock
) -> None:
    db_store.create("alice", PASSWORD, "viewer", actor="t")
    for _ in range(4):
        with pytest.raises(AuthError, match="Wrong username or password"):
            db_store.authenticate("alice", "guess")
    with pytest.raises(AccountLocked) as locked:
        db_store.authenticate("alice", "guess")
    assert locked.value.retry_at == clock.now + timedelta(minutes=15)
    assert "Try again after 12:15 UTC (in 15 minutes)" in str(locked.value)
    clock.advance(minutes=5)
    with pytest.raises(AccountLocked, match="in 10 minutes"):
        db_store.authenticate("alice", PASSWORD)  # even the right password waits
    clock.advance(minutes=10, seconds=1)
    assert db_store.authenticate("alice", PASSWORD).failed_attempts == 0


def test_lockout_holds_across_processes(db_url: str, clock: Clock) -> None:
    policy = LockoutPolicy(max_failures=2)
    first = UserStore(make_engine(db_url), clock=clock, policy=policy)
    first.create("alice", PASSWORD, "viewer", actor="t")
    with pytest.raises(AuthError):
        first.authenticate("alice", "guess")
    other_process = UserStore(make_engine(db_url), clock=clock, policy=policy)
    with pytest.raises(AccountLocked):
        other_process.authenticate("alice", "guess")
    with pytest.raises(AccountLocked):
        first.authenticate("alice", PASSWORD)
    assert other_process.get("alice").locked_until == clock.now + policy.lockout


def test_failures_spread_beyond_the_window_do_not_lock(store: UserStore, clock: Clock) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    for _ in range(8):
        with pytest.raises(AuthError) as err:
            store.authenticate("alice", "guess")
        assert not isinstance(err.value, AccountLocked)
        clock.advance(minutes=16)


def test_new_password_lifts_the_lockout(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    for _ in range(5):
        with pytest.raises(AuthError):
            store.authenticate("alice", "guess")
    store.set_password("alice", "brand new pass", actor="admin")
    with pytest.raises(AuthError, match="Wrong"):
        store.authenticate("alice", PASSWORD)
    assert store.authenticate("alice", "brand new pass").username == "alice"


def test_sign_in_upgrades_an_old_hash(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    with transaction(store.engine) as s:
        user = s.scalar(select(User).where(User.username == "alice"))
        user.password_hash = _old_hash(PASSWORD)
    store.authenticate("alice", PASSWORD)
    with transaction(store.engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "alice"))
    assert stored.startswith(f"scrypt$n={auth.SCRYPT_N},")


# ---- single sign-on ------------------------------------------------------------------------

ROLES = {"alice@example.com": "admin", "@example.com": "viewer", "@ops.example.org": "operator"}


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("alice@example.com", "admin"),
        ("Alice@Example.COM", "admin"),
        ("bob@example.com", "viewer"),
        ("carol@ops.example.org", "operator"),
    ],
)
def test_sso_exact_address_wins_over_domain(email: str, role: str) -> None:
    assert resolve_sso_role(email, ROLES) == role


def test_sso_unknown_address_is_refused_with_the_fix() -> None:
    with pytest.raises(AuthError) as err:
        resolve_sso_role("eve@evil.example", ROLES)
    assert "eve@evil.example may not use this console" in str(err.value)
    assert "[gatehouse.sso_roles]" in str(err.value)


def test_sso_subdomain_is_not_the_domain() -> None:
    with pytest.raises(AuthError):
        resolve_sso_role("mallory@evil.example.com", ROLES)


def test_sso_needs_a_verified_address() -> None:
    with pytest.raises(AuthError, match="no e-mail address"):
        resolve_sso_role(None, ROLES)
    with pytest.raises(AuthError, match="not a verified"):
        resolve_sso_role("bob@example.com", ROLES, email_verified=False)


def test_sso_mapping_with_a_bad_role_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'root', which is not a role"):
        resolve_sso_role("bob@example.com", {"@example.com": "root"})


# ---- lockout races, unknown users, client addresses (issue 7 item 9, issue 8 item 10) ----------


class CountingVerify:
    """The real password check, counting how often it runs (injected into UserStore)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, password: str, encoded: str) -> bool:
        with self._lock:
            self.calls += 1
        return verify_password(password, encoded)


def test_parallel_guesses_cannot_race_past_the_lockout(db_url: str, clock: Clock) -> None:
    verify = CountingVerify()
    store = UserStore(make_engine(db_url), clock=clock, verify=verify)
    store.create("alice", PASSWORD, "viewer", actor="t")

    def guess(i: int) -> type[BaseException]:
        try:
            store.authenticate("alice", f"wrong guess {i}")
        except AuthError as exc:
            return type(exc)
        return type(None)

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(guess, range(100)))
    assert verify.calls <= LockoutPolicy().max_failures
    assert outcomes.count(AccountLocked) >= 100 - LockoutPolicy().max_failures
    with pytest.raises(AccountLocked):
        store.authenticate("alice", PASSWORD)  # the right one, while locked
    assert verify.calls <= LockoutPolicy().max_failures


def test_unknown_username_is_locked_exactly_like_a_real_one(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    answers: dict[str, list[str]] = {"alice": [], "nobody": []}
    for name in answers:
        for _ in range(LockoutPolicy().max_failures + 1):
            with pytest.raises(AuthError) as err:
                store.authenticate(name, "wrong guess")
            answers[name].append(str(err.value).replace(repr(name), "NAME"))
    assert answers["alice"] == answers["nobody"]
    assert "Too many failed sign-ins for NAME" in answers["nobody"][-1]


def test_unknown_usernames_are_not_stored_in_plaintext(store: UserStore) -> None:
    typed = "my-secret-password-in-the-wrong-field"
    with pytest.raises(AuthError):
        store.authenticate(typed, "x")
    with transaction(store.engine) as s:
        rows = s.scalars(select(SigninThrottle)).all()
        audit = s.scalars(select(SettingsAudit)).all()
    assert rows and all(typed not in r.key for r in rows)
    assert all(typed not in str((a.target, a.after)) for a in audit)


def test_one_address_cannot_try_many_users(clock: Clock) -> None:
    store = UserStore(make_engine(), clock=clock, address_policy=LockoutPolicy(max_failures=3))
    store.create("alice", PASSWORD, "viewer", actor="t")
    for i in range(store.address_policy.max_failures):
        with pytest.raises(AuthError) as err:
            store.authenticate(f"user{i}", "guess", client_address="203.0.113.9")
        assert "network address" not in str(err.value)
    with pytest.raises(AccountLocked, match="from your network address"):
        store.authenticate("alice", PASSWORD, client_address="203.0.113.9")
    # Another address is not affected, and the user's own counter was never touched.
    assert store.authenticate("alice", PASSWORD, client_address="198.51.100.1")
    clock.advance(minutes=16)
    assert store.authenticate("alice", PASSWORD, client_address="203.0.113.9")


def test_successful_sign_ins_do_not_fill_the_address_counter() -> None:
    store = UserStore(make_engine(), address_policy=LockoutPolicy(max_failures=2))
    store.create("alice", PASSWORD, "viewer", actor="t")
    for _ in range(store.address_policy.max_failures + 3):
        store.authenticate("alice", PASSWORD, client_address="203.0.113.9")


def test_sign_in_upgrades_a_2_14_hash_to_2_17(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    with transaction(store.engine) as s:
        user = s.scalar(select(User).where(User.username == "alice"))
        user.password_hash = _old_hash(PASSWORD, n=2**14)
    store.authenticate("alice", PASSWORD)
    with transaction(store.engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "alice"))
    assert stored.startswith("scrypt$n=131072,r=8,p=1$")
    assert store.authenticate("alice", PASSWORD).username == "alice"


def test_unlock_lifts_a_lockout_and_is_audited(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    for _ in range(5):
        with pytest.raises(AuthError):
            store.authenticate("alice", "guess")
    assert store.get("alice").locked_until is not None
    assert store.unlock("alice", actor="root").locked_until is None
    assert store.authenticate("alice", PASSWORD).username == "alice"
    with transaction(store.engine) as s:
        actions = s.scalars(select(SettingsAudit.action)).all()
    assert "user.unlock" in actions


# ---- at least one enabled admin (issue 7 item 17) -----------------------------------------------


def test_last_enabled_admin_cannot_be_demoted(db_store: UserStore) -> None:
    db_store.create("root", PASSWORD, "admin", actor="t")
    with pytest.raises(ConfigError, match="last enabled admin; add or enable another admin"):
        db_store.set_role("root", "viewer", actor="root")
    db_store.create("ann", PASSWORD, "admin", actor="t")
    assert db_store.set_role("root", "viewer", actor="ann").role == "viewer"
    with pytest.raises(ConfigError, match="last enabled admin"):
        db_store.set_disabled("ann", True, actor="ann")


def test_role_change_validates_and_is_audited(store: UserStore) -> None:
    store.create("root", PASSWORD, "admin", actor="t")
    store.create("bob", PASSWORD, "viewer", actor="t")
    with pytest.raises(ValidationError, match="not a role"):
        store.set_role("bob", "owner", actor="root")
    store.set_role("bob", "operator", actor="root")
    with transaction(store.engine) as s:
        row = s.scalars(select(SettingsAudit).where(SettingsAudit.action == "user.set_role")).one()
    assert (row.before["role"], row.after["role"]) == ("viewer", "operator")


def _create_first_admin_in_a_process(url: str, name: str, barrier: Any, results: Any) -> None:
    store = UserStore(make_engine(url))
    barrier.wait()
    try:
        store.create_first_admin(name, PASSWORD)
        results.put("created")
    except AuthError:
        results.put("refused")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_create_only_one_first_admin(
    backend: str, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    url = sqlite_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    make_engine(url).dispose()  # migrate once, before the race
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_create_first_admin_in_a_process, args=(url, n, barrier, results))
        for n in ("ann", "bob")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert sorted(results.get(timeout=5) for _ in procs) == ["created", "refused"]
    assert len(UserStore(make_engine(url)).list_users()) == 1


def test_refused_sign_ins_are_audited_without_secrets(store: UserStore) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    with pytest.raises(AuthError):
        store.authenticate("alice", "wrong-password-1", client_address="203.0.113.9")
    with pytest.raises(AuthError):
        store.authenticate("typed-a-password-here", "wrong-password-2")
    with transaction(store.engine) as s:
        rows = s.scalars(
            select(SettingsAudit).where(SettingsAudit.action == "session.sign_in_failed")
        ).all()
    assert [(r.target, r.after["reason"]) for r in rows] == [
        ("alice", "wrong username or password"),
        (None, "wrong username or password"),
    ]
    assert rows[0].after["client_address"] == "203.0.113.9"
    dumped = str([(r.actor, r.target, r.before, r.after) for r in rows])
    assert "wrong-password" not in dumped and "typed-a-password-here" not in dumped
