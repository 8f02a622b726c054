"""Console users: roles and what each may do, scrypt password hashes, sign-in with lockout.

Roles are `admin`, `operator` and `viewer`; `PERMISSIONS` is the one table of what each
role may do, and the navigation, the page guards and the CLI all read it.

Passwords are hashed with scrypt and a random salt into a self-describing string
(`scrypt$n=16384,r=8,p=1$<salt>$<hash>`), so the parameters can be raised later without
breaking stored hashes. Failed sign-ins are counted in the `users` row itself, so the
lockout holds across console processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Engine, case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .db import transaction
from .errors import AccountLocked, AuthError, ConfigError, NotFound, ValidationError
from .schema import ConsoleSession, SettingsAudit, SigninThrottle, User, utcnow

ROLES = ("admin", "operator", "viewer")

# What each permission lets a user do (the key is what pages and guards ask for).
PERMISSION_HELP: dict[str, str] = {
    "providers": "manage providers and their API keys",
    "playground": "send test prompts through the gateway",
    "models": "browse the model catalog",
    "models.refresh": "refresh the model catalog from the providers",
    "dashboards": "read usage and cost dashboards",
    "history": "read the configuration change history",
    "users": "manage console users",
    "budgets.edit": "change budgets, alert rules and the alert webhook",
    "alerts.ack": "acknowledge cost alerts",
    "tokens": "manage API tokens",
}

# The one table of who may do what: admin everything, the others a fixed subset.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSION_HELP),
    "operator": frozenset({"playground", "models", "dashboards", "alerts.ack"}),
    "viewer": frozenset({"models", "dashboards"}),
}

USERNAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

SCRYPT_N = 2**17  # current guidance; hashes made at 2**14 are upgraded at sign-in
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
_MAX_SCRYPT_N = 2**20  # a stored hash asking for more is refused, not computed


def can(role: str, permission: str) -> bool:
    """Whether `role` may do `permission` (an unknown role may do nothing)."""
    if permission not in PERMISSION_HELP:
        raise ValueError(f"unknown permission {permission!r}")
    return permission in PERMISSIONS.get(role, frozenset())


# ---- password hashing ------------------------------------------------------------------


def hash_password(password: str) -> str:
    """A salted scrypt hash in the self-describing form `scrypt$n=…,r=…,p=…$salt$hash`."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    params = f"n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}"
    return f"scrypt${params}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded` (constant-time compare; False for a bad hash)."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    n, r, p, salt, expected = parsed
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """Whether a stored hash uses weaker parameters than today's (rehash on next sign-in)."""
    parsed = _parse_hash(encoded)
    return parsed is None or (parsed[0], parsed[1], parsed[2]) != (SCRYPT_N, SCRYPT_R, SCRYPT_P)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        scheme, params, salt, digest = encoded.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt_bytes, digest_bytes = _unb64(salt), _unb64(digest)
    except (ValueError, KeyError):
        return None
    if scheme != "scrypt" or not (1 < n <= _MAX_SCRYPT_N and n & (n - 1) == 0):
        return None
    if not (1 <= r <= 32 and 1 <= p <= 16 and salt_bytes and 16 <= len(digest_bytes) <= 64):
        return None
    return n, r, p, salt_bytes, digest_bytes


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


_dummy_hash: str | None = None


def _burn_time(password: str) -> None:
    """Hash against a throwaway so an unknown username takes as long as a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _dummy_hash)


# ---- validation ------------------------------------------------------------------------


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def username_error(username: str) -> str | None:
    if not USERNAME_PATTERN.match(username):
        return (
            f"{username!r} is not a valid username: use 1-64 lowercase letters, digits, "
            "dots, dashes or underscores, starting and ending with a letter or digit"
        )
    return None


def password_error(password: str) -> str | None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password must have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def role_error(role: str) -> str | None:
    if role not in ROLES:
        return f"{role!r} is not a role; use one of {', '.join(ROLES)}"
    return None


# ---- users -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    """After `max_failures` failed sign-ins, each within `window` of the previous one, the
    account refuses sign-ins for `lockout` after the last failure."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


# One address may be an office behind NAT: more room than one account, still far too few
# for guessing many users' passwords.
ADDRESS_POLICY = LockoutPolicy(max_failures=20)


def throttle_key(kind: str, value: str) -> str:
    """The `signin_throttle` key: a hash, so what someone typed as a username is not stored."""
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class UserInfo:
    """A console user as the console and CLI show it (never the hash)."""

    username: str
    role: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    failed_attempts: int
    locked_until: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The documented shape of `gatehouse users list --json`."""
        return {
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
            "failed_attempts": self.failed_attempts,
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
        }


class UserStore:
    """Creates, lists, changes and authenticates console users; every change is audited."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: LockoutPolicy | None = None,
        address_policy: LockoutPolicy = ADDRESS_POLICY,
        verify: Callable[[str, str], bool] = verify_password,
    ):
        self.engine = engine
        self._clock = clock
        self.policy = policy or LockoutPolicy()
        self.address_policy = address_policy
        self._verify = verify  # injectable so a test can count the checks a race got through

    # ---- reads ---------------------------------------------------------------------------

    def has_users(self) -> bool:
        """Whether any user exists (the console shows the first-admin form until one does)."""
        with transaction(self.engine) as s:
            return s.scalar(select(User.id).limit(1)) is not None

    def list_users(self) -> list[UserInfo]:
        """Every user, by username."""
        with transaction(self.engine) as s:
            rows = s.scalars(select(User).order_by(User.username)).all()
            return [self._info(u) for u in rows]

    def get(self, username: str) -> UserInfo:
        with transaction(self.engine) as s:
            return self._info(self._find(s, normalize_username(username)))

    # ---- changes -------------------------------------------------------------------------

    def create(self, username: str, password: str, role: str, *, actor: str) -> UserInfo:
        """Add a user; ValidationError names each bad field (username, password, role)."""
        username = normalize_username(username)
        self._validate(username, password, role)
        with transaction(self.engine) as s:
            return self._insert(s, username, password, role, actor)

    def create_first_admin(self, username: str, password: str) -> UserInfo:
        """Create the first admin, only while no user exists (the one-time console setup)."""
        username = normalize_username(username)
        self._validate(username, password, "admin")
        with transaction(self.engine) as s:
            _lock_users(s)  # two browsers racing through setup: the second waits, then sees
            if s.scalar(select(User.id).limit(1)) is not None:
                raise AuthError("The first admin already exists; sign in instead.")
            return self._insert(s, username, password, "admin", actor=username)

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> UserInfo:
        """Disable or enable a user; the last enabled admin cannot be disabled."""
        with transaction(self.engine) as s:
            _lock_users(s)  # two admins disabling each other at once: one waits and is refused
            user = self._find(s, normalize_username(username))
            if disabled and user.role == "admin" and not user.disabled:
                self._refuse_last_admin(s, user, "disabling")
            before = _audit_view(user)
            user.disabled = disabled
            if disabled:
                self._end_sessions(s, user.username, actor, "account disabled")
            else:
                user.failed_attempts, user.last_failed_at = 0, None
            action = "user.disable" if disabled else "user.enable"
            s.add(self._audit(actor, action, user, before))
            return self._info(user)

    def set_role(self, username: str, role: str, *, actor: str) -> UserInfo:
        """Change a user's role; the last enabled admin cannot be demoted."""
        error = role_error(role)
        if error:
            raise ValidationError({"role": error})
        with transaction(self.engine) as s:
            _lock_users(s)
            user = self._find(s, normalize_username(username))
            if user.role == "admin" and role != "admin" and not user.disabled:
                self._refuse_last_admin(s, user, "demoting")
            before = _audit_view(user)
            user.role = role
            s.add(self._audit(actor, "user.set_role", user, before))
            return self._info(user)

    def unlock(self, username: str, *, actor: str) -> UserInfo:
        """Lift a lockout after failed sign-ins (the password stays as it is)."""
        with transaction(self.engine) as s:
            user = self._find(s, normalize_username(username))
            before = _audit_view(user)
            user.failed_attempts, user.last_failed_at = 0, None
            s.add(self._audit(actor, "user.unlock", user, before))
            return self._info(user)

    def set_password(self, username: str, password: str, *, actor: str) -> UserInfo:
        """Replace a user's password (and lift any lockout)."""
        error = password_error(password)
        if error:
            raise ValidationError({"password": error})
        with transaction(self.engine) as s:
            user = self._find(s, normalize_username(username))
            before = _audit_view(user)
            user.password_hash = hash_password(password)
            user.failed_attempts, user.last_failed_at = 0, None
            self._end_sessions(s, user.username, actor, "password changed")
            s.add(self._audit(actor, "user.set_password", user, before))
            return self._info(user)

    # ---- sign-in -------------------------------------------------------------------------

    def authenticate(
        self, username: str, password: str, *, client_address: str | None = None
    ) -> UserInfo:
        """The user for these credentials, or AuthError/AccountLocked saying why not.

        Each attempt takes a slot in the failure counters (the client address's, and the
        user's, or the unknown name's) atomically *before* the password is checked, so
        parallel guesses cannot get past the lockout; a successful sign-in gives the slots
        back. Unknown usernames are counted and locked exactly like real ones, so neither
        the message nor the timing tells whether an account exists.
        """
        username = normalize_username(username)
        try:
            return self._authenticate(username, password or "", client_address)
        except AuthError as exc:
            self._audit_failure(username, exc, client_address)
            raise

    def _authenticate(self, username: str, password: str, client_address: str | None) -> UserInfo:
        now = self._clock()
        if client_address:
            self._take_address_slot(client_address, now)
        with transaction(self.engine) as s:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            self._refuse_unknown(username, password, now)
        failures = self._take_user_slot(user, now)
        if not self._verify(password, user.password_hash):
            self._refuse_wrong(username, failures, now)
        self._record_success(user.id, password, user.password_hash)
        if client_address:
            self._give_back_address_slot(client_address)
        if user.disabled:
            raise AuthError(
                f"The account {username!r} is disabled; ask an admin to enable it "
                f"(`gatehouse users enable {username}`)."
            )
        return self.get(username)

    def _audit_failure(self, username: str, exc: AuthError, client_address: str | None) -> None:
        """A refused sign-in in settings_audit: the account only if it exists (what was typed
        as an unknown username may be a password), the reason, the address; never a secret."""
        if isinstance(exc, AccountLocked):
            reason = "locked"
        elif str(exc).startswith("The account"):
            reason = "disabled"
        else:
            reason = "wrong username or password"
        with transaction(self.engine) as s:
            known = s.scalar(select(User.id).where(User.username == username)) is not None
            s.add(
                SettingsAudit(
                    actor=username if known else "(unknown user)",
                    action="session.sign_in_failed",
                    target=username if known else None,
                    after={"reason": reason, "client_address": client_address},
                )
            )

    def _take_user_slot(self, user: User, now: datetime) -> int:
        """Count this attempt in the user's row, unless the account is locked (then refuse)."""
        fresh = (User.last_failed_at.is_(None)) | (User.last_failed_at < now - self.policy.window)
        locked = (User.failed_attempts >= self.policy.max_failures) & (
            User.last_failed_at > now - self.policy.lockout
        )
        stmt = (
            update(User)
            .where(User.id == user.id, ~locked)
            .values(
                failed_attempts=case((fresh, 1), else_=User.failed_attempts + 1),
                last_failed_at=now,
            )
            .returning(User.failed_attempts)
            .execution_options(synchronize_session=False)
        )
        with transaction(self.engine) as s:
            failures = s.scalar(stmt)
            if failures is None:  # locked (or deleted meanwhile, which reads the same)
                last = s.scalar(select(User.last_failed_at).where(User.id == user.id)) or now
        if failures is None:
            self._raise_locked(user.username, last + self.policy.lockout, now)
        return int(failures)

    def _refuse_unknown(self, username: str, password: str, now: datetime) -> NoReturn:
        key = throttle_key("username", username)
        failures = self._take_throttle_slot(key, "username", self.policy, now)
        if failures is None:
            self._raise_locked(username, self._throttle_retry_at(key, self.policy, now), now)
        _burn_time(password)  # as long as checking a real user's password
        self._refuse_wrong(username, failures, now)

    def _refuse_wrong(self, username: str, failures: int, now: datetime) -> NoReturn:
        if failures >= self.policy.max_failures:
            self._raise_locked(username, now + self.policy.lockout, now)
        raise AuthError("Wrong username or password.")

    def _raise_locked(self, username: str, retry_at: datetime, now: datetime) -> NoReturn:
        raise AccountLocked(_locked_message(username, retry_at, now), retry_at)

    def _take_address_slot(self, address: str, now: datetime) -> None:
        policy = self.address_policy
        key = throttle_key("address", address)
        if self._take_throttle_slot(key, "address", policy, now) is None:
            retry_at = self._throttle_retry_at(key, policy, now)
            minutes = _minutes_until(retry_at, now)
            raise AccountLocked(
                f"Too many failed sign-ins from your network address. Try again after "
                f"{retry_at:%H:%M} UTC (in {minutes} minute{'s' if minutes != 1 else ''}).",
                retry_at,
            )

    def _take_throttle_slot(
        self, key: str, kind: str, policy: LockoutPolicy, now: datetime
    ) -> int | None:
        """Count an attempt for `key` in one statement; None when `key` is locked."""
        table = SigninThrottle.__table__
        fresh = table.c.last_failed_at.is_(None) | (table.c.last_failed_at < now - policy.window)
        locked = (table.c.failures >= policy.max_failures) & (
            table.c.last_failed_at > now - policy.lockout
        )
        with transaction(self.engine) as s:
            insert = (
                postgresql_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            )
            stmt = (
                insert(table)
                .values(key=key, kind=kind, failures=1, last_failed_at=now)
                .on_conflict_do_update(
                    index_elements=[table.c.key],
                    set_={
                        "failures": case((fresh, 1), else_=table.c.failures + 1),
                        "last_failed_at": now,
                    },
                    where=~locked,
                )
                .returning(table.c.failures)
            )
            return s.scalar(stmt)

    def _throttle_retry_at(self, key: str, policy: LockoutPolicy, now: datetime) -> datetime:
        with transaction(self.engine) as s:
            last = s.scalar(select(SigninThrottle.last_failed_at).where(SigninThrottle.key == key))
        return (last or now) + policy.lockout

    def _give_back_address_slot(self, address: str) -> None:
        table = SigninThrottle.__table__
        with transaction(self.engine) as s:
            s.execute(
                update(table)
                .where(table.c.key == throttle_key("address", address), table.c.failures > 0)
                .values(failures=table.c.failures - 1)
            )

    def _record_success(self, user_id: int, password: str, stored_hash: str) -> None:
        with transaction(self.engine) as s:
            user = s.get(User, user_id)
            if user is None:  # deleted between the two reads
                raise AuthError("Wrong username or password.")
            user.failed_attempts, user.last_failed_at = 0, None
            if user.disabled:
                return
            user.last_login_at = self._clock()
            if needs_rehash(stored_hash):
                user.password_hash = hash_password(password)

    # ---- internals -----------------------------------------------------------------------

    def _validate(self, username: str, password: str, role: str) -> None:
        errors = {
            field: message
            for field, message in (
                ("username", username_error(username)),
                ("password", password_error(password)),
                ("role", role_error(role)),
            )
            if message
        }
        if errors:
            raise ValidationError(errors)

    def _insert(self, s: Any, username: str, password: str, role: str, actor: str) -> UserInfo:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise ValidationError({"username": f"a user named {username!r} already exists"})
        user = User(
            username=username,
            password_hash=hash_password(password),
            role=role,
            disabled=False,
            created_at=self._clock(),
            failed_attempts=0,
        )
        s.add(user)
        s.add(self._audit(actor, "user.create", user, None))
        return self._info(user)

    @staticmethod
    def _find(s: Any, username: str) -> User:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"No user named {username!r}; `gatehouse users list` shows them")
        return user

    def _end_sessions(self, s: Any, username: str, actor: str, reason: str) -> None:
        """Sign the user out everywhere, in the transaction that disables or re-keys them."""
        ended = s.execute(
            update(ConsoleSession)
            .where(ConsoleSession.username == username, ConsoleSession.revoked_at.is_(None))
            .values(revoked_at=self._clock(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        ).rowcount
        if ended:
            s.add(
                SettingsAudit(
                    actor=actor,
                    action="session.sign_out_all",
                    target=username,
                    after={"reason": reason, "ended": int(ended)},
                )
            )

    @staticmethod
    def _refuse_last_admin(s: Any, user: User, what: str) -> None:
        others = s.scalar(
            select(func.count(User.id)).where(
                User.role == "admin", User.disabled.is_(False), User.id != user.id
            )
        )
        if not others:
            raise ConfigError(
                f"{user.username!r} is the last enabled admin; add or enable another admin "
                f"before {what} this one"
            )

    def _locked_until(self, user: User) -> datetime | None:
        if user.failed_attempts < self.policy.max_failures or user.last_failed_at is None:
            return None
        until = user.last_failed_at + self.policy.lockout
        return until if until > self._clock() else None

    def _info(self, user: User) -> UserInfo:
        return UserInfo(
            username=user.username,
            role=user.role,
            disabled=bool(user.disabled),
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            failed_attempts=user.failed_attempts or 0,
            locked_until=self._locked_until(user),
        )

    @staticmethod
    def _audit(actor: str, action: str, user: User, before: dict[str, Any] | None) -> SettingsAudit:
        return SettingsAudit(
            actor=actor, action=action, target=user.username, before=before, after=_audit_view(user)
        )


def _audit_view(user: User) -> dict[str, Any]:
    """What the audit records about a user: never the password or its hash."""
    return {"username": user.username, "role": user.role, "disabled": bool(user.disabled)}


def _lock_users(s: Any) -> None:
    """Serialise writers of `users` for a check-then-write (first admin, last admin)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))
    else:
        # SQLite: a write as the first statement takes the database's write lock now (what
        # BEGIN IMMEDIATE does), so a second process waits instead of reading a stale count.
        s.execute(text("DELETE FROM users WHERE 1 = 0"))


def _minutes_until(retry_at: datetime, now: datetime) -> int:
    return max(1, int((retry_at - now).total_seconds() + 59) // 60)


def _locked_message(username: str, retry_at: datetime, now: datetime) -> str:
    minutes = _minutes_until(retry_at, now)
    return (
        f"Too many failed sign-ins for {username[:64]!r}. Try again after "
        f"{retry_at:%H:%M} UTC (in {minutes} minute{'s' if minutes != 1 else ''}), "
        "or ask an admin to reset the password."
    )


# ---- single sign-on --------------------------------------------------------------------


def resolve_sso_role(
    email: str | None, mapping: Mapping[str, str], *, email_verified: bool | None = None
) -> str:
    """The role for an SSO identity: an exact e-mail entry wins over an `@domain` entry.

    `mapping` is `[gatehouse.sso_roles]` from secrets.toml, e.g.
    `{"alice@example.com": "admin", "@example.com": "viewer"}`. An identity with no entry
    is refused with AuthError; a bad role in the mapping is a ConfigError.
    """
    roles = {str(k).strip().lower(): str(v).strip().lower() for k, v in mapping.items()}
    for key, role in roles.items():
        if role not in ROLES:
            raise ConfigError(
                f"[gatehouse.sso_roles] maps {key!r} to {role!r}, which is not a role; "
                f"use one of {', '.join(ROLES)}"
            )
    address = (email or "").strip().lower()
    if "@" not in address:
        raise AuthError(
            "The identity provider returned no e-mail address, so no role can be given; "
            "ask your identity provider admin to release the `email` claim."
        )
    if email_verified is False:
        raise AuthError(f"{address} is not a verified e-mail address at the identity provider.")
    domain = "@" + address.rsplit("@", 1)[1]
    role = roles.get(address) or roles.get(domain)
    if role is None:
        raise AuthError(
            f"{address} may not use this console. An admin can allow it by adding "
            f'"{address}" (or "{domain}") to [gatehouse.sso_roles] in .streamlit/secrets.toml.'
        )
    return role
