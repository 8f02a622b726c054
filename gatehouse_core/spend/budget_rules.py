"""Budget rules and the figures they are judged by: scopes, validation, the `budgets` table
(every change audited), months in GATEHOUSE_TIMEZONE, month-to-date spend from the rollup.

`budgets.py` holds the admitter that enforces them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, func, select

from .. import settings
from ..db import transaction
from ..errors import ConfigError, NotFound
from ..schema import ApiToken, Budget, SettingsAudit, UsageHourly, utcnow

SCOPES = ("global", "provider", "source", "actor")
# An API token's monthly budget (`gatehouse tokens create --monthly-usd`) is a rule of scope
# "token" read from `api_tokens`, not from `budgets`: it applies to calls whose actor is
# `token:NAME`, and is set with the token, never with `gatehouse budgets set`.
TOKEN_SCOPE = "token"
ACTIONS = ("block", "alert")


@dataclass(frozen=True)
class CallInfo:
    """What a budget needs to know about one upstream attempt before it is sent."""

    provider: str
    model: str
    prompt_tokens: int  # the caller's estimate (prompt characters / 4)
    max_tokens: int | None = None
    source: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class BudgetRule:
    """One monthly budget. `value` is '' for the global budget."""

    scope: str
    value: str
    monthly_usd: float
    action: str = "block"

    @property
    def key(self) -> str:
        return "global" if self.scope == "global" else f"{self.scope}:{self.value}"

    @property
    def label(self) -> str:
        if self.scope == TOKEN_SCOPE:
            return f"the monthly budget of the API token {self.value!r}"
        return (
            "the global budget"
            if self.scope == "global"
            else f"the {self.scope} budget {self.value!r}"
        )

    @property
    def match(self) -> tuple[str, str] | None:
        """The CallInfo field and value this rule applies to (None: every call)."""
        if self.scope == "global":
            return None
        if self.scope == TOKEN_SCOPE:
            return "actor", f"token:{self.value}"
        return self.scope, self.value

    def applies_to(self, call: CallInfo) -> bool:
        match = self.match
        return match is None or getattr(call, match[0]) == match[1]

    def set_command(self) -> str:
        if self.scope == TOKEN_SCOPE:  # a token's budget is fixed when it is created
            return f"gatehouse tokens create NEW_NAME --role ROLE --monthly-usd USD, then revoke {self.value}"
        flag = "" if self.scope == "global" else f" --{self.scope} {self.value}"
        return f"gatehouse budgets set --monthly USD{flag}"

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "value": self.value or None,
            "monthly_usd": self.monthly_usd,
            "action": self.action,
        }


def make_rule(
    scope: str, value: str | None, monthly_usd: float, action: str = "block"
) -> BudgetRule:
    """A validated rule; ConfigError says what is wrong and how to fix it."""
    if scope not in SCOPES:
        raise ConfigError(f"budget scope {scope!r} is unknown; use one of {', '.join(SCOPES)}")
    value = (value or "").strip()
    if scope == "global" and value:
        raise ConfigError("the global budget takes no name; drop the value or pick a scope")
    if scope != "global" and not value:
        raise ConfigError(f"a {scope} budget needs the {scope}'s name, e.g. --{scope} NAME")
    if len(value) > 200:
        raise ConfigError(f"the {scope} name is {len(value)} characters; at most 200 are allowed")
    if not isinstance(monthly_usd, int | float) or not (0 < float(monthly_usd) < 1e9):
        raise ConfigError(
            f"monthly budget {monthly_usd!r} must be a number of USD above 0, e.g. 50"
        )
    if action not in ACTIONS:
        raise ConfigError(f"budget action {action!r} is unknown; use block or alert")
    return BudgetRule(scope, value, float(monthly_usd), action)


# ---- months ------------------------------------------------------------------------------


def budget_timezone(env: Any = None) -> ZoneInfo:
    """GATEHOUSE_TIMEZONE (declared by the console's settings) or UTC when unset or undeclared."""
    try:
        name = settings.get("GATEHOUSE_TIMEZONE", env)
    except KeyError:  # not declared on this branch yet
        name = (os.environ if env is None else env).get("GATEHOUSE_TIMEZONE", "").strip()
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"GATEHOUSE_TIMEZONE={name!r} is not a time zone; use a name like Europe/Berlin or UTC"
        ) from None


def month_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The start (in UTC) of the month `now` falls in, months beginning at midnight in `tz`."""
    local = now.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def next_month_start(now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)


# ---- stored rules and month-to-date spend -------------------------------------------------


class BudgetStore:
    """Budget rules in the `budgets` table; every change is audited in `settings_audit`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def list_rules(self) -> list[BudgetRule]:
        with transaction(self.engine) as s:
            rows = s.scalars(select(Budget).order_by(Budget.scope, Budget.scope_value)).all()
            return [
                BudgetRule(r.scope, r.scope_value, float(r.monthly_usd), r.action) for r in rows
            ]

    def set(self, rule: BudgetRule, *, actor: str) -> BudgetRule:
        """Create or replace the budget of `rule`'s scope."""
        rule = make_rule(rule.scope, rule.value, rule.monthly_usd, rule.action)
        with transaction(self.engine) as s:
            row = s.scalars(_row_query(rule.scope, rule.value).with_for_update()).first()
            before = _view(row) if row else None
            if row is None:
                row = Budget(scope=rule.scope, scope_value=rule.value, monthly_usd=0)
                s.add(row)
            row.monthly_usd, row.action = rule.monthly_usd, rule.action
            row.updated_at, row.updated_by = utcnow(), actor
            s.add(_audit(actor, "budget.set", rule.key, before, rule.to_json()))
        return rule

    def remove(self, scope: str, value: str | None, *, actor: str) -> BudgetRule:
        value = (value or "").strip()
        with transaction(self.engine) as s:
            row = s.scalars(_row_query(scope, value).with_for_update()).first()
            if row is None:
                shown = "global budget" if scope == "global" else f"{scope} budget {value!r}"
                raise NotFound(f"there is no {shown}; `gatehouse budgets list` shows the budgets")
            rule = BudgetRule(row.scope, row.scope_value, float(row.monthly_usd), row.action)
            s.delete(row)
            s.add(_audit(actor, "budget.remove", rule.key, rule.to_json(), None))
        return rule


def _row_query(scope: str, value: str) -> Any:
    return select(Budget).where(Budget.scope == scope, Budget.scope_value == value)


def _view(row: Budget) -> dict[str, Any]:
    return BudgetRule(row.scope, row.scope_value, float(row.monthly_usd), row.action).to_json()


def _audit(actor: str, action: str, target: str, before: Any, after: Any) -> SettingsAudit:
    return SettingsAudit(actor=actor, action=action, target=target, before=before, after=after)


def token_rules(engine: Engine) -> list[BudgetRule]:
    """Every live API token's monthly budget as a `block` rule of scope "token"."""
    query = (
        select(ApiToken.name, ApiToken.monthly_usd)
        .where(ApiToken.monthly_usd.is_not(None), ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.name)
    )
    with engine.connect() as conn:
        return [
            BudgetRule(TOKEN_SCOPE, name, float(limit), "block")
            for name, limit in conn.execute(query)
        ]


def rules_in_force(engine: Engine) -> list[BudgetRule]:
    """The `budgets` table's rules and the API tokens' budgets: what the admitter and the
    alerts enforce (two statements)."""
    return BudgetStore(engine).list_rules() + token_rules(engine)


def month_to_date_spend(
    engine: Engine, rules: Iterable[BudgetRule], since: datetime
) -> dict[str, float]:
    """Recorded spend since `since` per rule key, from the hourly rollup (one query)."""
    query = (
        select(
            UsageHourly.provider,
            UsageHourly.source,
            UsageHourly.actor,
            func.coalesce(func.sum(UsageHourly.cost_usd), 0),
        )
        .where(UsageHourly.bucket_start >= since)
        .group_by(UsageHourly.provider, UsageHourly.source, UsageHourly.actor)
    )
    with engine.connect() as conn:
        groups = [(p, s, a, float(c or 0)) for p, s, a, c in conn.execute(query)]
    spend: dict[str, float] = {}
    for rule in rules:
        spend[rule.key] = sum(
            cost
            for provider, source, actor, cost in groups
            if rule.applies_to(CallInfo(provider, "", 0, source=source, actor=actor))
        )
    return spend


def usd(value: float) -> str:
    """Dollars for messages and tables: cents from $1 up, four decimals below."""
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
