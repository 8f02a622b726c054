"""API tokens for the HTTP API: create, list, revoke, verify; and the per-token limits.

A token is `gh_` + 32 random bytes (URL-safe base64), shown once when created. Only its
SHA-256 hash is stored (a high-entropy secret needs no slow hash) with a short display prefix
(`gh_AbCd…`). Each token has a role (the roles and permissions of `auth.py`), and optionally a
monthly budget in USD, a requests-per-minute limit, allowed model patterns (fnmatch) and an
expiry. Calls made with a token are audited with the actor `token:NAME`.

Per-token limits (`TokenLimits`), checked before a call is handed to the gateway:
- model patterns: the requested model (or the default provider's default model) must match one;
- requests per minute: the rate limiter of `ratelimit.py`, keyed `token:NAME`, so the limit is
  shared through Redis when GATEHOUSE_REDIS_URL is set;
- monthly budget: a `block` rule of the gateway's budgets (spend/budgets.py), scope "token",
  read from this table by `spend.budget_rules.token_rules`: each attempt reserves its worst case before it is
  sent and settles to the real cost, shared through Redis like every budget; months begin in
  GATEHOUSE_TIMEZONE. A refused call is a 402 with an audit row `rejected`/`budget`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from .auth import ROLES, role_error
from .db import transaction
from .errors import ConfigError, GatehouseError, NotFound, ValidationError
from .providers import RateLimit
from .reports import parse_since
from .schema import ApiToken, LLMRequest, SettingsAudit, utcnow
from .spend.budget_rules import budget_timezone
from .spend.budget_rules import month_start as budget_month_start

TOKEN_PREFIX = "gh_"
TOKEN_BYTES = 32
DISPLAY_CHARS = 4  # random characters kept after `gh_` for display
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9_.:/~*?\[\]!-]{1,200}$")
# last_used_at is written at most this often per token and process (not one write per call).
LAST_USE_RESOLUTION = timedelta(seconds=60)
# A token verified this recently is trusted without a database read (the HTTP API's hot path);
# a revoke in this process takes effect at once, one in another process within this.
VERIFIED_TTL = timedelta(seconds=1)


class TokenError(GatehouseError):
    """A request's API token is missing, unknown, revoked or expired; `code` says which."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class TokenForbidden(GatehouseError):
    """The token may not do this (its role, or the model is outside its patterns)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class TokenRateLimited(GatehouseError):
    """The token's requests-per-minute limit is used up; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def display(prefix: str) -> str:
    return f"{prefix}…"


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token (never the token or its hash)."""

    name: str
    role: str
    prefix: str
    monthly_usd: float | None
    rpm: int | None
    models: tuple[str, ...] | None
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """The actor on audit rows and settings changes made with this token."""
        return f"token:{self.name}"

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def allows_model(self, model: str) -> bool:
        return self.models is None or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The documented shape of `gatehouse tokens list --json` (one element)."""
        return {
            "name": self.name,
            "role": self.role,
            "prefix": display(self.prefix),
            "status": self.status(now or utcnow()),
            "monthly_usd": self.monthly_usd,
            "rpm": self.rpm,
            "models": list(self.models) if self.models is not None else None,
            "expires_at": _iso(self.expires_at),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def parse_models(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`"openai/*,anthropic/claude-*"` → patterns; ValidationError naming a bad one."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    patterns = tuple(p.strip() for p in items if p.strip())
    if not patterns:
        raise ValidationError({"models": "give at least one model pattern, e.g. openai/*"})
    for pattern in patterns:
        if not MODEL_PATTERN.match(pattern):
            raise ValidationError(
                {
                    "models": f"{pattern!r} is not a model pattern; use a model id with * or ? "
                    "wildcards, e.g. openai/* or anthropic/claude-sonnet-4"
                }
            )
    return patterns


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """`"30d"` → the moment 30 days from now; uses the same spans as `--since`."""
    if text is None:
        return None
    try:
        return now + parse_since(text)
    except ConfigError as exc:
        raise ValidationError({"expires": str(exc)}) from None


class _Verified:
    """Tokens verified lately, for the whole process: keyed by (database, token hash), so a
    revoke through any TokenStore here drops the token for every store at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[TokenInfo, datetime]] = {}

    def get(self, key: tuple[str, str]) -> tuple[TokenInfo, datetime] | None:
        return self._entries.get(key)

    def put(self, key: tuple[str, str], info: TokenInfo, at: datetime) -> None:
        with self._lock:
            self._entries[key] = (info, at)

    def drop(self, name: str) -> None:
        with self._lock:
            for key in [k for k, (info, _) in self._entries.items() if info.name == name]:
                del self._entries[key]


_VERIFIED = _Verified()


class TokenStore:
    """Creates, lists, revokes and verifies API tokens; every change is in settings_audit."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self._clock = clock
        self._last_use_written: dict[str, datetime] = {}
        self._database = engine.url.render_as_string(hide_password=True)

    def create(
        self,
        name: str,
        role: str,
        *,
        actor: str,
        monthly_usd: float | None = None,
        rpm: int | None = None,
        models: str | Sequence[str] | None = None,
        expires: str | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token: (its info, the token itself — shown once, never stored)."""
        now = self._clock()
        name = (name or "").strip().lower()
        patterns, expires_at = self._validate(name, role, monthly_usd, rpm, models, expires, now)
        token = generate_token()
        row = ApiToken(
            name=name,
            token_hash=hash_token(token),
            prefix=token[: len(TOKEN_PREFIX) + DISPLAY_CHARS],
            role=role,
            monthly_usd=monthly_usd,
            rpm=rpm,
            models=list(patterns) if patterns is not None else None,
            expires_at=expires_at,
            created_at=now,
            created_by=actor,
        )
        with transaction(self.engine) as s:
            if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise ValidationError(
                    {"name": f"a token named {name!r} already exists (revoked ones too)"}
                )
            s.add(row)
            s.flush()
            info = _info(row)
            s.add(_audit(actor, "token.create", info, None, now))
        return info, token

    def list(self) -> list[TokenInfo]:
        """Every token, by name (revoked and expired ones too)."""
        with transaction(self.engine) as s:
            return [_info(r) for r in s.scalars(select(ApiToken).order_by(ApiToken.name))]

    def get(self, name: str) -> TokenInfo:
        with transaction(self.engine) as s:
            return _info(self._find(s, name))

    def revoke(self, name: str, *, actor: str) -> TokenInfo:
        """Revoke a token at once (idempotent: revoking again changes nothing)."""
        now = self._clock()
        with transaction(self.engine) as s:
            row = self._find(s, name)
            if row.revoked_at is not None:
                return _info(row)
            before = _info(row)
            row.revoked_at = now
            info = _info(row)
            s.add(_audit(actor, "token.revoke", info, before, now))
        _VERIFIED.drop(info.name)
        return info

    def cached(self, token: str | None) -> TokenInfo | None:
        """The token's info without touching the database, when this process verified it less
        than VERIFIED_TTL ago, it is still active and no last-use stamp is due; else None
        (then call `verify`, which reads the database). Never raises: cheap enough to call on
        the event loop."""
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        entry = _VERIFIED.get(self._key(token))
        if entry is None:
            return None
        info, verified_at = entry
        now = self._clock()
        if now - verified_at >= VERIFIED_TTL or info.status(now) != "active":
            return None
        last = self._last_use_written.get(info.name)
        if last is None or now - last >= LAST_USE_RESOLUTION:
            return None
        return info

    def _key(self, token: str) -> tuple[str, str]:
        return (self._database, hash_token(token))

    def verify(self, token: str | None) -> TokenInfo:
        """The token's info, or TokenError saying why it cannot be used."""
        if not token:
            raise TokenError(
                "No API token: send it as `Authorization: Bearer <token>` (create one with "
                "`gatehouse tokens create NAME --role operator`).",
                "missing_token",
            )
        if not token.startswith(TOKEN_PREFIX):
            raise TokenError("The API token is not a GateHouse token (gh_…).", "invalid_token")
        now = self._clock()
        with transaction(self.engine) as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
            if row is None:
                raise TokenError(
                    "The API token is not known; check it or create a new one.", "invalid_token"
                )
            info = _info(row)
            status = info.status(now)
            if status == "revoked":
                raise TokenError(f"The API token {info.name!r} was revoked.", "token_revoked")
            if status == "expired":
                raise TokenError(
                    f"The API token {info.name!r} expired at {info.expires_at:%Y-%m-%d %H:%M} UTC.",
                    "token_expired",
                )
            if self._due_for_last_use(info.name, now):
                row.last_used_at = now
        _VERIFIED.put(self._key(token), info, now)
        return info

    def _due_for_last_use(self, name: str, now: datetime) -> bool:
        last = self._last_use_written.get(name)
        if last is not None and now - last < LAST_USE_RESOLUTION:
            return False
        self._last_use_written[name] = now
        return True

    @staticmethod
    def _find(s: Any, name: str) -> ApiToken:
        row = s.scalar(select(ApiToken).where(ApiToken.name == (name or "").strip().lower()))
        if row is None:
            raise NotFound(f"No API token named {name!r}; `gatehouse tokens list` shows them")
        return row

    @staticmethod
    def _validate(
        name: str,
        role: str,
        monthly_usd: float | None,
        rpm: int | None,
        models: str | Sequence[str] | None,
        expires: str | None,
        now: datetime,
    ) -> tuple[tuple[str, ...] | None, datetime | None]:
        errors: dict[str, str] = {}
        if not NAME_PATTERN.match(name):
            errors["name"] = (
                f"{name!r} is not a valid token name: use 1-64 lowercase letters, digits, dots, "
                "dashes or underscores, starting and ending with a letter or digit"
            )
        if role not in ROLES:
            errors["role"] = role_error(role) or "unknown role"
        if monthly_usd is not None and (
            not isinstance(monthly_usd, int | float)
            or not math.isfinite(monthly_usd)
            or monthly_usd <= 0
        ):
            errors["monthly_usd"] = f"must be a positive amount of USD, not {monthly_usd!r}"
        if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
            errors["rpm"] = f"must be a whole number of at least 1, not {rpm!r}"
        patterns = expires_at = None
        try:
            patterns = parse_models(models)
        except ValidationError as exc:
            errors.update(exc.errors)
        try:
            expires_at = parse_expiry(expires, now)
        except ValidationError as exc:
            errors.update(exc.errors)
        if errors:
            raise ValidationError(errors)
        return patterns, expires_at


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        monthly_usd=float(row.monthly_usd) if row.monthly_usd is not None else None,
        rpm=row.rpm,
        models=tuple(row.models) if row.models is not None else None,
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _audit(
    actor: str, action: str, info: TokenInfo, before: TokenInfo | None, now: datetime
) -> SettingsAudit:
    """The audit row: the token's settings and display prefix, never the token or its hash."""

    def view(i: TokenInfo) -> dict[str, Any]:
        data = i.to_json(now)
        data.pop("last_used_at")
        return data

    return SettingsAudit(
        actor=actor,
        action=action,
        target=info.name,
        before=view(before) if before else None,
        after=view(info),
        created_at=now,
    )


# ---- per-token limits ------------------------------------------------------------------


def month_start(now: datetime) -> datetime:
    """The start of the month in GATEHOUSE_TIMEZONE, as the budgets count months."""
    return budget_month_start(now, budget_timezone())


@dataclass(frozen=True)
class TokenUsage:
    """One token's traffic since the start of the month (for lists and the tokens page)."""

    calls: int = 0
    cost_usd: float = 0.0


def month_to_date_usage(engine: Engine, now: datetime) -> dict[str, TokenUsage]:
    """Calls (distinct request ids) and cost per token name this month, in one query."""
    query = (
        select(
            LLMRequest.actor,
            func.count(func.distinct(LLMRequest.request_id)),
            func.coalesce(func.sum(LLMRequest.cost_usd), 0),
        )
        .where(LLMRequest.actor.like("token:%"), LLMRequest.created_at >= month_start(now))
        .group_by(LLMRequest.actor)
    )
    with transaction(engine) as s:
        rows = s.execute(query).all()
    return {
        actor.removeprefix("token:"): TokenUsage(int(calls), round(float(cost), 10))
        for actor, calls, cost in rows
    }


class TokenLimits:
    """Admission for one call made with a token: model patterns and requests per minute.

    `limiter` is the gateway's RateLimiter (shared through Redis when configured); the rpm key
    is `token:NAME`, which cannot clash with a provider name (no `:` in those). The monthly
    budget is not checked here: it is a rule of the gateway's budgets (`budget_rules.token_rules`), so it
    is reserved and settled with every other budget, shared through Redis.
    """

    def __init__(self, limiter: Any, *, window_seconds: int = 60):
        self.limiter = limiter
        self.window_seconds = window_seconds

    def check_model(self, token: TokenInfo, model: str) -> None:
        if not token.allows_model(model):
            allowed = ", ".join(token.models or ())
            raise TokenForbidden(
                f"The API token {token.name!r} may not use the model {model!r}; "
                f"its allowed models are: {allowed}.",
                "model_not_allowed",
            )

    def take_rpm(self, token: TokenInfo) -> None:
        if token.rpm is None or self.limiter is None:
            return
        permit = self.limiter.acquire(token.actor, RateLimit(requests_per_minute=token.rpm), 0, 0.0)
        if permit is None:
            raise TokenRateLimited(
                f"The API token {token.name!r} is at its limit of {token.rpm} requests per "
                f"minute; retry within {self.window_seconds} s.",
                retry_after=self.window_seconds,
            )
        permit.release()  # no concurrency slot is held for a token: only the count matters
