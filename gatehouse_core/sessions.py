"""Console sessions: who is signed in to which browser, kept in the database.

A sign-in creates a `console_sessions` row and returns a one-time hand-off ticket. The
browser redeems the ticket at `/auth/session` (a same-origin POST), which mints the session
token, sets it as an HttpOnly cookie and stores only its SHA-256. Any console process that
shares the database then recognises the cookie: a reload, a new tab, a second replica.

Tokens and tickets are 256-bit random values, so a fast hash is enough (a slow password hash
protects low-entropy secrets only). A session ends when it is revoked (sign-out, an admin,
the user disabled or given a new password), after `idle` without use, or `max_age` after it
began, whichever comes first. Every sign-in and sign-out is written to `settings_audit`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from . import settings
from .db import transaction
from .schema import ConsoleSession, SettingsAudit, utcnow

COOKIE_NAME = "gatehouse_session"
TICKET_LIFETIME = timedelta(seconds=60)
# last_seen_at is written at most this often per session: idle timeouts are hours, and a
# write on every click would make each rerun a database write.
TOUCH_INTERVAL = timedelta(seconds=30)
USER_AGENT_LENGTH = 300
ADDRESS_LENGTH = 64


def token_hash(token: str) -> str:
    """The stored form of a session token or ticket (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: `idle` without use, `max_age` at most."""

    idle: timedelta = timedelta(hours=8)
    max_age: timedelta = timedelta(days=7)

    @classmethod
    def from_settings(cls) -> SessionPolicy:
        """GATEHOUSE_SESSION_IDLE and GATEHOUSE_SESSION_MAX (SettingError if malformed)."""
        return cls(
            idle=timedelta(seconds=settings.get_duration("GATEHOUSE_SESSION_IDLE")),
            max_age=timedelta(seconds=settings.get_duration("GATEHOUSE_SESSION_MAX")),
        )


@dataclass(frozen=True)
class SessionInfo:
    """A console session as pages and the CLI show it (never a token or its hash)."""

    id: int
    username: str
    role: str
    via: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    client_address: str | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The documented shape of `gatehouse users sessions NAME --json`."""
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "via": self.via,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "user_agent": self.user_agent,
            "client_address": self.client_address,
        }


@dataclass(frozen=True)
class NewSession:
    """A session just created: its id (kept server-side) and the ticket for the browser."""

    info: SessionInfo
    ticket: str


class SessionStore:
    """Creates, resolves and revokes console sessions; sign-ins and sign-outs are audited."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: SessionPolicy | None = None,
    ):
        self.engine = engine
        self._clock = clock
        self.policy = policy or SessionPolicy.from_settings()

    # ---- sign-in -------------------------------------------------------------------------

    def create(
        self,
        username: str,
        role: str,
        *,
        via: str = "password",
        user_agent: str | None = None,
        client_address: str | None = None,
    ) -> NewSession:
        """A new session for a user who just proved who they are, with its hand-off ticket."""
        now = self._clock()
        ticket = new_token()
        row = ConsoleSession(
            # Nobody knows this token: the cookie's token is minted when the ticket is redeemed.
            token_hash=token_hash(new_token()),
            ticket_hash=token_hash(ticket),
            ticket_expires_at=now + TICKET_LIFETIME,
            username=username,
            role=role,
            via=via,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.policy.max_age,
            user_agent=_clip(user_agent, USER_AGENT_LENGTH),
            client_address=_clip(client_address, ADDRESS_LENGTH),
        )
        with transaction(self.engine) as s:
            s.add(row)
            s.flush()
            s.add(_audit(username, "session.sign_in", username, {"via": via, **_where(row)}))
            return NewSession(self._info(row), ticket)

    def redeem_ticket(self, ticket: str) -> str | None:
        """The session token for a valid, unused, unexpired ticket (then spent), else None."""
        now = self._clock()
        fresh = new_token()
        with transaction(self.engine) as s:
            row = s.scalar(
                select(ConsoleSession)
                .where(ConsoleSession.ticket_hash == token_hash(ticket or ""))
                .with_for_update()
            )
            if row is None or row.ticket_expires_at is None:
                return None
            usable = row.ticket_expires_at > now and self._alive(row, now)
            row.ticket_hash, row.ticket_expires_at = None, None  # spent either way
            if not usable:
                return None
            row.token_hash = token_hash(fresh)
            return fresh

    # ---- who is this? ----------------------------------------------------------------------

    def resolve(self, token: str | None) -> SessionInfo | None:
        """The live session for a cookie token, or None (unknown, revoked or expired)."""
        if not token or not isinstance(token, str):
            return None
        return self._resolve(ConsoleSession.token_hash == token_hash(token))

    def resolve_id(self, session_id: int) -> SessionInfo | None:
        """The live session with this id (the browser tab that signed in holds only the id)."""
        return self._resolve(ConsoleSession.id == session_id)

    def _resolve(self, where: Any) -> SessionInfo | None:
        now = self._clock()
        with transaction(self.engine) as s:
            row = s.scalar(select(ConsoleSession).where(where))
            if row is None or not self._alive(row, now):
                return None
            if now - row.last_seen_at >= min(TOUCH_INTERVAL, self.policy.idle / 10):
                row.last_seen_at = now
            return self._info(row)

    def _alive(self, row: ConsoleSession, now: datetime) -> bool:
        return (
            row.revoked_at is None
            and row.expires_at > now
            and row.last_seen_at + self.policy.idle > now
        )

    def list_for(self, username: str) -> list[SessionInfo]:
        """The user's live sessions, newest first."""
        now = self._clock()
        with transaction(self.engine) as s:
            rows = s.scalars(
                select(ConsoleSession)
                .where(ConsoleSession.username == username, ConsoleSession.revoked_at.is_(None))
                .order_by(ConsoleSession.created_at.desc(), ConsoleSession.id.desc())
            ).all()
            return [self._info(r) for r in rows if self._alive(r, now)]

    # ---- sign-out --------------------------------------------------------------------------

    def revoke(self, session_id: int, *, actor: str, reason: str = "signed out") -> bool:
        """End one session everywhere; False if it was already over."""
        now = self._clock()
        with transaction(self.engine) as s:
            row = s.get(ConsoleSession, session_id, with_for_update=True)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at, row.revoked_reason = now, reason[:100]
            s.add(_audit(actor, "session.sign_out", row.username, {"reason": reason, "id": row.id}))
            return True

    def revoke_token(self, token: str | None, *, reason: str = "signed out") -> bool:
        """End the session of a cookie token (the sign-out route); False if none was live."""
        info = self.resolve(token)
        return info is not None and self.revoke(info.id, actor=info.username, reason=reason)

    def revoke_user(self, username: str, *, actor: str, reason: str) -> int:
        """End every session of `username` (sign out everywhere); returns how many ended."""
        now = self._clock()
        with transaction(self.engine) as s:
            ended = s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.username == username, ConsoleSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason[:100])
                .execution_options(synchronize_session=False)
            ).rowcount
            s.add(
                _audit(actor, "session.sign_out_all", username, {"reason": reason, "ended": ended})
            )
            return int(ended or 0)

    # ---- internals -------------------------------------------------------------------------

    @staticmethod
    def _info(row: ConsoleSession) -> SessionInfo:
        return SessionInfo(
            id=row.id,
            username=row.username,
            role=row.role,
            via=row.via,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            client_address=row.client_address,
            revoked_at=row.revoked_at,
        )


def _clip(value: str | None, length: int) -> str | None:
    if not value:
        return None
    # Header text from the browser: keep it printable so it can be shown and stored anywhere.
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value)
    return cleaned.encode("utf-8", "replace").decode("utf-8")[:length]


def _where(row: ConsoleSession) -> dict[str, Any]:
    return {"client_address": row.client_address, "user_agent": row.user_agent}


def _audit(actor: str, action: str, target: str, after: dict[str, Any]) -> SettingsAudit:
    return SettingsAudit(actor=actor, action=action, target=target, before=None, after=after)
