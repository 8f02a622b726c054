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
from typing import Any

from sqlalchemy import Engine, case, func, select, text, update

from .db import transaction
from .errors import AccountLocked, AuthError, ConfigError, NotFound, ValidationError
from .schema import SettingsAudit, User, utcnow

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
}

# The one table of who may do what: admin everything, the others a fixed subset.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSION_HELP),
    "operator": frozenset({"playground", "models", "dashboards"}),
    "viewer": frozenset({"models", "dashboards"}),
}

USERNAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

SCRYPT_N = 2**14
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
    ):
        self.engine = engine
        self._clock = clock
        self.policy = policy or LockoutPolicy()

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
            if s.get_bind().dialect.name == "postgresql":
                # Two browsers racing through setup: the second waits, then sees the first.
                s.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))
            if s.scalar(select(User.id).limit(1)) is not None:
                raise AuthError("The first admin already exists; sign in instead.")
            return self._insert(s, username, password, "admin", actor=username)

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> UserInfo:
        """Disable or enable a user; the last enabled admin cannot be disabled."""
        with transaction(self.engine) as s:
            user = self._find(s, normalize_username(username))
            if disabled and user.role == "admin" and not user.disabled:
                self._refuse_last_admin(s, user)
            before = _audit_view(user)
            user.disabled = disabled
            if not disabled:
                user.failed_attempts, user.last_failed_at = 0, None
            action = "user.disable" if disabled else "user.enable"
            s.add(self._audit(actor, action, user, before))
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
            s.add(self._audit(actor, "user.set_password", user, before))
            return self._info(user)

    # ---- sign-in -------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> UserInfo:
        """The user for these credentials, or AuthError/AccountLocked saying why not."""
        username = normalize_username(username)
        with transaction(self.engine) as s:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            _burn_time(password or "")
            raise AuthError("Wrong username or password.")
        self._refuse_locked(user)
        if not verify_password(password or "", user.password_hash):
            self._record_failure(user)
        if user.disabled:
            raise AuthError(
                f"The account {username!r} is disabled; ask an admin to enable it "
                f"(`gatehouse users enable {username}`)."
            )
        return self._record_success(user.id, password, user.password_hash)

    def _refuse_locked(self, user: User) -> None:
        retry_at = self._locked_until(user)
        if retry_at is not None:
            raise AccountLocked(_locked_message(user.username, retry_at, self._clock()), retry_at)

    def _record_failure(self, user: User) -> None:
        now = self._clock()
        fresh = (User.last_failed_at.is_(None)) | (User.last_failed_at < now - self.policy.window)
        stmt = (
            update(User)
            .where(User.id == user.id)
            .values(
                failed_attempts=case((fresh, 1), else_=User.failed_attempts + 1),
                last_failed_at=now,
            )
            .returning(User.failed_attempts)
            .execution_options(synchronize_session=False)
        )
        with transaction(self.engine) as s:
            failures = s.scalar(stmt) or 0
        if failures >= self.policy.max_failures:
            retry_at = now + self.policy.lockout
            raise AccountLocked(_locked_message(user.username, retry_at, now), retry_at)
        raise AuthError("Wrong username or password.")

    def _record_success(self, user_id: int, password: str, stored_hash: str) -> UserInfo:
        with transaction(self.engine) as s:
            user = s.get(User, user_id)
            if user is None:  # deleted between the two reads
                raise AuthError("Wrong username or password.")
            user.failed_attempts, user.last_failed_at = 0, None
            user.last_login_at = self._clock()
            if needs_rehash(stored_hash):
                user.password_hash = hash_password(password)
            return self._info(user)

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

    @staticmethod
    def _refuse_last_admin(s: Any, user: User) -> None:
        others = s.scalar(
            select(func.count(User.id)).where(
                User.role == "admin", User.disabled.is_(False), User.id != user.id
            )
        )
        if not others:
            raise ConfigError(
                f"{user.username!r} is the last enabled admin; add or enable another admin "
                "before disabling this one"
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


def _locked_message(username: str, retry_at: datetime, now: datetime) -> str:
    minutes = max(1, int((retry_at - now).total_seconds() + 59) // 60)
    return (
        f"Too many failed sign-ins for {username!r}. Try again after "
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
