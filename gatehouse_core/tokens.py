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
- monthly budget: month-to-date cost of the token's calls in `llm_requests` (UTC month). A
  check before the call, not a reservation: calls in flight, and audit rows not yet written by
  the background writer, are not counted (reserve-then-settle comes with the budgets work).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from .auth import ROLES, role_error
from .db import transaction
from .errors import ConfigError, GatehouseError, NotFound, ValidationError
from .providers import RateLimit
from .reports import parse_since
from .schema import ApiToken, LLMRequest, SettingsAudit, utcnow

TOKEN_PREFIX = "gh_"
TOKEN_BYTES = 32
DISPLAY_CHARS = 4  # random characters kept after `gh_` for display
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9_.:/~*?\[\]!-]{1,200}$")
# last_used_at is written at most this often per token and process (not one write per call).
LAST_USE_RESOLUTION = timedelta(seconds=60)


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


class TokenBudgetExceeded(GatehouseError):
    """The token's monthly budget is spent."""


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


class TokenStore:
    """Creates, lists, revokes and verifies API tokens; every change is in settings_audit."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self._clock = clock
        self._last_use_written: dict[str, datetime] = {}

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
        return info

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
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date_cost(engine: Engine, actor: str, now: datetime) -> float:
    """USD spent by `actor` since the start of the UTC month, from the audit rows."""
    query = select(func.coalesce(func.sum(LLMRequest.cost_usd), 0)).where(
        LLMRequest.actor == actor, LLMRequest.created_at >= month_start(now)
    )
    with transaction(engine) as s:
        # Money is kept to 10 decimals; rounding drops the float noise of SQLite's SUM.
        return round(float(s.scalar(query) or 0), 10)


@dataclass(frozen=True)
class TokenUsage:
    """One token's traffic since the start of the UTC month (for lists and the tokens page)."""

    calls: int = 0
    cost_usd: float = 0.0


def month_to_date_usage(engine: Engine, now: datetime) -> dict[str, TokenUsage]:
    """Calls (distinct request ids) and cost per token name this UTC month, in one query."""
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
    """Admission for one call made with a token: model patterns, rpm, monthly budget.

    `limiter` is the gateway's RateLimiter (shared through Redis when configured); the rpm key
    is `token:NAME`, which cannot clash with a provider name (no `:` in those).
    """

    def __init__(
        self,
        engine: Engine,
        limiter: Any,
        *,
        catalog: Any = None,
        window_seconds: int = 60,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self.limiter = limiter
        self.catalog = catalog  # prices for the worst case a call reserves
        self.window_seconds = window_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}  # token name → USD reserved by calls in flight
        # Settled costs not yet surely in llm_requests (the audit writer lags): (when, USD).
        self._recent: dict[str, deque[tuple[float, float]]] = {}

    def check_model(self, token: TokenInfo, model: str) -> None:
        if not token.allows_model(model):
            allowed = ", ".join(token.models or ())
            raise TokenForbidden(
                f"The API token {token.name!r} may not use the model {model!r}; "
                f"its allowed models are: {allowed}.",
                "model_not_allowed",
            )

    def check_budget(self, token: TokenInfo) -> None:
        if token.monthly_usd is None:
            return
        now = self._clock()
        spent = month_to_date_cost(self.engine, token.actor, now)
        if spent >= token.monthly_usd:
            raise TokenBudgetExceeded(
                f"The API token {token.name!r} has spent ${spent:.4f} of its "
                f"${token.monthly_usd:g} monthly budget; it resets at the start of next month "
                "(UTC), or an admin can create a token with a larger budget."
            )

    def reserve_budget(
        self, token: TokenInfo, model: str | None, prompt_tokens: int, max_tokens: int | None
    ) -> TokenHold:
        """Reserve the call's worst case against the token's monthly budget, then settle it
        with the real cost (or release it): month-to-date spend (read now) + this process's
        open reservations and recent costs + the worst case must fit, so two concurrent calls
        near the limit cannot both pass. Worst case and defaults as the gateway's budgets
        (spend/budgets.py): catalog prices × (prompt + max_tokens or DEFAULT_OUTPUT_TOKENS),
        UNKNOWN_PRICE_RESERVE_USD for an unpriced model."""
        if token.monthly_usd is None:
            return TokenHold(self, token.name, 0.0, active=False)
        amount = self.worst_case_usd(model, prompt_tokens, max_tokens)
        spent = month_to_date_cost(self.engine, token.actor, self._clock())
        with self._lock:
            held = self._held.get(token.name, 0.0)
            recent = self._recent_cost(token.name)
            if spent + recent + held + amount > token.monthly_usd + 1e-12:
                raise TokenBudgetExceeded(
                    f"The API token {token.name!r} has spent ${spent + recent:.4f} of its "
                    f"${token.monthly_usd:g} monthly budget"
                    + (f", ${held:.4f} more is held by calls in flight" if held else "")
                    + f", and this call may cost up to ${amount:.4f}; it resets at the start of "
                    "next month (UTC), or send a smaller max_tokens, or an admin can create a "
                    "token with a larger budget."
                )
            self._held[token.name] = held + amount
        return TokenHold(self, token.name, amount)

    def worst_case_usd(
        self, model: str | None, prompt_tokens: int, max_tokens: int | None
    ) -> float:
        from .spend.budgets import DEFAULT_OUTPUT_TOKENS, UNKNOWN_PRICE_RESERVE_USD

        output = max_tokens if max_tokens and max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
        cost = None
        if self.catalog is not None and model:
            try:
                cost = self.catalog.estimate_cost(model, max(prompt_tokens, 0), output)
            except Exception:  # a broken catalog reserves the conservative default
                cost = None
        return UNKNOWN_PRICE_RESERVE_USD if cost is None else float(cost)

    def _recent_cost(self, name: str) -> float:
        """Costs settled in the last SETTLED_LAG_SECONDS (their audit rows may not be in yet;
        at worst one counts twice for that long). Called under the lock."""
        entries = self._recent.get(name)
        if not entries:
            return 0.0
        while entries and entries[0][0] <= self._monotonic() - SETTLED_LAG_SECONDS:
            entries.popleft()
        return sum(cost for _, cost in entries)

    def _finish(self, hold: TokenHold, cost: float | None) -> None:
        with self._lock:
            self._held[hold.name] = max(self._held.get(hold.name, 0.0) - hold.amount_usd, 0.0)
            if cost:
                self._recent.setdefault(hold.name, deque()).append((self._monotonic(), cost))

    def open_reservations(self, name: str) -> float:
        with self._lock:
            return self._held.get(name, 0.0)

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


SETTLED_LAG_SECONDS = 2.0  # the audit writer flushes every 0.2 s; a settled cost counts this long


class TokenHold:
    """One call's reservation against its token's monthly budget: `settle(cost)` once the
    answer is in (None: unknown, counted as the reserved worst case), `release()` when the call
    failed (a billed failure reaches the month's figure through its audit row). Once only."""

    def __init__(self, owner: TokenLimits, name: str, amount_usd: float, *, active: bool = True):
        self._owner = owner
        self.name = name
        self.amount_usd = amount_usd
        self._done = not active

    def settle(self, cost_usd: float | None) -> None:
        if not self._done:
            self._done = True
            self._owner._finish(self, self.amount_usd if cost_usd is None else cost_usd)

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._owner._finish(self, None)
