"""Cost alerts: rules, firing once per rule and window across processes, webhook delivery.

Rules (stored as the `alert_rules` document in `system_settings`, every change audited):
- `hourly_spend`: spend recorded in one UTC clock hour (from `llm_usage_hourly`) at or over
  `hourly_spend_usd`; windows are clock hours, `check()` looks at the previous and current hour;
- `budget`: a budget's month-to-date spend reaching each of `budget_thresholds` percent; the
  window is the budget month;
- `cooldown`: a provider entering cooldown (`Alerts.provider_cooldown`, called by the gateway);
  windows are `COOLDOWN_WINDOW` long, so a flapping provider alerts at most once per window.

An alert fires when its INSERT into `alerts` succeeds: the unique (rule, window_start) key makes
every other process's INSERT conflict, so exactly one process logs and delivers it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import transaction, unreachable
from ..errors import ConfigError, DatabaseUnavailable, NotFound
from ..schema import Alert, AlertDelivery, SettingsAudit, SystemSetting, UsageHourly, utcnow
from . import webhook
from .budget_rules import (
    budget_timezone,
    month_start,
    month_to_date_spend,
    next_month_start,
    rules_in_force,
    usd,
)

log = logging.getLogger("gatehouse.alerts")

SETTINGS_KEY = "alert_rules"
DEFAULT_THRESHOLDS = (50, 80, 100)
COOLDOWN_WINDOW = timedelta(minutes=10)
CHECK_EVERY_SECONDS = 60.0  # how often a gateway process evaluates the rules as it goes
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AlertConfig:
    """The alert rules and the webhook; None switches a rule or the webhook off."""

    hourly_spend_usd: float | None = None
    budget_thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    webhook_url: str | None = None
    secret_env: str | None = None

    def to_json(self, *, masked: bool = False) -> dict[str, Any]:
        url = self.webhook_url
        return {
            "hourly_spend_usd": self.hourly_spend_usd,
            "budget_thresholds": list(self.budget_thresholds),
            "webhook_url": webhook.shown_url(url) if masked and url else url,
            "secret_env": self.secret_env,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertConfig:
        return cls(
            hourly_spend_usd=data.get("hourly_spend_usd"),
            budget_thresholds=tuple(data.get("budget_thresholds") or DEFAULT_THRESHOLDS),
            webhook_url=data.get("webhook_url") or None,
            secret_env=data.get("secret_env") or None,
        )


def parse_thresholds(text: str) -> tuple[int, ...]:
    """'50,80,100' → (50, 80, 100); ConfigError for anything but whole percents 1–1000."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= 1000 for v in values):
        raise ConfigError(
            f"budget thresholds {text!r} must be whole percents between 1 and 1000, e.g. 50,80,100"
        )
    return tuple(values)


class AlertConfigStore:
    """Reads and changes the `alert_rules` document; each change is audited."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self) -> AlertConfig:
        with transaction(self.engine) as s:
            row = s.get(SystemSetting, SETTINGS_KEY)
            return AlertConfig.from_json(row.value) if row else AlertConfig()

    def set_hourly_spend(self, amount: float | None, *, actor: str) -> AlertConfig:
        if amount is not None and not 0 < amount < 1e9:
            raise ConfigError(f"hourly spend {amount!r} must be USD above 0, e.g. 50")
        return self._change({"hourly_spend_usd": amount}, actor, "alerts.hourly_spend")

    def set_budget_thresholds(self, thresholds: tuple[int, ...], *, actor: str) -> AlertConfig:
        return self._change(
            {"budget_thresholds": list(parse_thresholds(",".join(map(str, thresholds))))},
            actor,
            "alerts.budget_thresholds",
        )

    def set_webhook(self, url: str | None, secret_env: str | None, *, actor: str) -> AlertConfig:
        if url is not None and (problem := webhook.check_url(url)):
            raise ConfigError(problem)
        if secret_env is not None and not _ENV_NAME.match(secret_env):
            raise ConfigError(
                f"--secret-env {secret_env!r} is not an environment variable name (e.g. "
                "GATEHOUSE_WEBHOOK_SECRET); the secret itself is never passed as an argument"
            )
        change = {"webhook_url": url.strip() if url else None, "secret_env": secret_env}
        return self._change(change, actor, "alerts.webhook")

    def _change(self, change: dict[str, Any], actor: str, action: str) -> AlertConfig:
        with transaction(self.engine) as s:
            row = s.get(SystemSetting, SETTINGS_KEY, with_for_update=True)
            before = AlertConfig.from_json(row.value) if row else None
            current = before or AlertConfig()
            after = AlertConfig.from_json({**current.to_json(), **change})
            if row is None:
                row = SystemSetting(key=SETTINGS_KEY, value={}, description="alert rules")
                s.add(row)
            row.value, row.updated_at, row.updated_by = after.to_json(), utcnow(), actor
            s.add(
                SettingsAudit(
                    actor=actor,
                    action=action,
                    target=SETTINGS_KEY,
                    before=before.to_json(masked=True) if before else None,
                    after=after.to_json(masked=True),
                )
            )
        return after


@dataclass(frozen=True)
class FiredAlert:
    id: int
    kind: str
    rule: str
    threshold: float | None
    value: float | None
    window_start: datetime
    window_end: datetime
    fired_at: datetime
    text: str
    acknowledged_at: datetime | None = None
    deliveries: list[webhook.DeliveryAttempt] = field(default_factory=list, compare=False)

    def payload(self) -> dict[str, Any]:
        """The webhook body (see the README's "Alerts" section)."""
        return {
            "kind": self.kind,
            "rule": self.rule,
            "threshold": self.threshold,
            "value": self.value,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "text": self.text,
        }

    def to_json(self) -> dict[str, Any]:
        acknowledged = self.acknowledged_at.isoformat() if self.acknowledged_at else None
        return {"id": self.id, **self.payload(), "acknowledged_at": acknowledged}

    @classmethod
    def from_row(cls, row: Alert) -> FiredAlert:
        return cls(
            row.id,
            row.kind,
            row.rule,
            row.threshold,
            row.value,
            row.window_start,
            row.window_end,
            row.fired_at,
            row.text,
            row.acknowledged_at,
        )


class Alerts:
    """Evaluates the rules, fires each alert once, logs it and delivers it to the webhook."""

    def __init__(
        self,
        engine: Engine,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        env: Mapping[str, str] | None = None,
        background: bool = False,
        backoff: tuple[float, ...] = webhook.BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`background=True` delivers on a daemon thread (the gateway must not wait for a
        webhook); the CLI delivers inline so `alerts check` reports the outcome."""
        self.engine = engine
        self._now = now
        self._sleep = sleep
        self._env = os.environ if env is None else env
        self._background = background
        self._backoff = backoff
        self._clock = clock
        self._checked_at = float("-inf")
        self._check_lock = threading.Lock()

    # ---- rules -------------------------------------------------------------------------

    def check(self) -> list[FiredAlert]:
        """Evaluate the spend and budget rules once; returns the alerts this call fired."""
        config = AlertConfigStore(self.engine).get()
        fired: list[FiredAlert] = []
        if config.hourly_spend_usd is not None:
            fired += self._check_hourly(config, config.hourly_spend_usd)
        fired += self._check_budgets(config)
        return fired

    def check_soon(self, every: float = CHECK_EVERY_SECONDS) -> threading.Thread | None:
        """For gateway processes after each call: start `check()` on a daemon thread if none ran
        in the last `every` seconds and none is running; returns that thread (or None). The
        unique key still makes each alert fire once however many processes check."""
        with self._check_lock:
            if self._clock() - self._checked_at < every:
                return None
            self._checked_at = self._clock()
        thread = threading.Thread(target=self._check_quietly, name="gatehouse-alerts", daemon=True)
        thread.start()
        return thread

    def _check_quietly(self) -> None:
        try:
            self.check()
        except Exception as exc:  # housekeeping: a failed check waits for the next one
            log.warning("alert check failed: %s", exc)

    def _check_hourly(self, config: AlertConfig, limit: float) -> list[FiredAlert]:
        hour = self._now().replace(minute=0, second=0, microsecond=0)
        fired = []
        for start in (hour - timedelta(hours=1), hour):
            end = start + timedelta(hours=1)
            spent = self._spend_between(start, end)
            if spent >= limit:
                text = (
                    f"GateHouse spent {usd(spent)} between {start:%Y-%m-%d %H:%M} and "
                    f"{end:%H:%M} UTC, over the {usd(limit)}/hour alert"
                )
                alert = self.fire(
                    "hourly_spend", "hourly_spend", limit, spent, start, end, text, config
                )
                fired += [alert] if alert else []
        return fired

    def _check_budgets(self, config: AlertConfig) -> list[FiredAlert]:
        rules = rules_in_force(self.engine)
        if not rules:
            return []
        tz = budget_timezone()
        now = self._now()
        start, end = month_start(now, tz), next_month_start(now, tz)
        spent = month_to_date_spend(self.engine, rules, start)
        fired = []
        for rule in rules:
            percent = 100 * spent.get(rule.key, 0.0) / rule.monthly_usd
            for threshold in config.budget_thresholds:
                if percent < threshold:
                    continue
                text = (
                    f"{rule.label[0].upper()}{rule.label[1:]} reached {percent:.0f}% "
                    f"({usd(spent.get(rule.key, 0.0))} of {usd(rule.monthly_usd)} this month, "
                    f"action {rule.action})"
                )
                name = f"budget:{rule.key}:{threshold}"
                alert = self.fire(
                    "budget", name, threshold, round(percent, 2), start, end, text, config
                )
                fired += [alert] if alert else []
        return fired

    def provider_cooldown(self, provider: str, until: datetime | None = None) -> FiredAlert | None:
        """The gateway's entry point when a provider enters cooldown. With `background=True` it
        returns None at once and fires on a daemon thread; it never raises into the caller (a
        database outage is logged as a warning)."""
        if self._background:
            threading.Thread(
                target=self._cooldown, args=(provider, until), name="gatehouse-alert", daemon=True
            ).start()
            return None
        return self._cooldown(provider, until)

    def _cooldown(self, provider: str, until: datetime | None) -> FiredAlert | None:
        now = self._now()
        step = COOLDOWN_WINDOW.total_seconds()
        start = datetime.fromtimestamp(now.timestamp() // step * step, UTC)
        until_text = f" until {until:%H:%M:%S} UTC" if until else ""
        text = f"Provider {provider} entered cooldown{until_text} after repeated failures"
        try:
            return self.fire(
                "cooldown", f"cooldown:{provider}", None, None, start, start + COOLDOWN_WINDOW, text
            )
        except DatabaseUnavailable as exc:
            log.warning("could not record the cooldown alert for %s: %s", provider, exc)
            return None

    def _spend_between(self, start: datetime, end: datetime) -> float:
        query = select(func.coalesce(func.sum(UsageHourly.cost_usd), 0)).where(
            UsageHourly.bucket_start >= start, UsageHourly.bucket_start < end
        )
        with self.engine.connect() as conn:
            return float(conn.execute(query).scalar() or 0)

    # ---- firing ------------------------------------------------------------------------

    def fire(
        self,
        kind: str,
        rule: str,
        threshold: float | None,
        value: float | None,
        window_start: datetime,
        window_end: datetime,
        text: str,
        config: AlertConfig | None = None,
    ) -> FiredAlert | None:
        """Record the alert; None if another process already fired this rule in this window."""
        row = Alert(
            kind=kind,
            rule=rule,
            threshold=threshold,
            value=value,
            window_start=window_start,
            window_end=window_end,
            fired_at=self._now(),
            text=text,
        )
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                s.add(row)
        except IntegrityError:
            return None  # the unique key says someone else fired it
        except SQLAlchemyError as exc:
            raise unreachable(self.engine, exc) from None
        alert = FiredAlert.from_row(row)
        log.warning("alert: %s", text, extra={"fields": {"alert": alert.payload()}})
        self._deliver(alert, config or AlertConfigStore(self.engine).get())
        return alert

    def send_test(self) -> list[webhook.DeliveryAttempt]:
        """Deliver a `test` alert to the webhook (recorded like any other delivery)."""
        config = AlertConfigStore(self.engine).get()
        if not config.webhook_url:
            raise ConfigError("no webhook is set; add one: gatehouse alerts webhook URL")
        now = self._now()
        alert = self.fire(
            "test",
            f"test:{now.isoformat()}",
            None,
            None,
            now,
            now,
            "GateHouse test alert: the webhook works",
            config,
        )
        return alert.deliveries if alert else []

    def _deliver(self, alert: FiredAlert, config: AlertConfig) -> None:
        if not config.webhook_url:
            return
        if self._background:
            threading.Thread(
                target=self._post, args=(alert, config), name="gatehouse-alert", daemon=True
            ).start()
        else:
            self._post(alert, config)

    def _post(self, alert: FiredAlert, config: AlertConfig) -> None:
        assert config.webhook_url
        secret = None
        if config.secret_env:
            secret = self._env.get(config.secret_env, "").strip() or None
            if secret is None:
                log.warning(
                    "alert webhook secret variable %s is not set; delivering unsigned",
                    config.secret_env,
                )
        attempts = webhook.deliver(
            config.webhook_url, alert.payload(), secret, sleep=self._sleep, backoff=self._backoff
        )
        alert.deliveries.extend(attempts)
        shown = webhook.shown_url(config.webhook_url)
        try:
            with transaction(self.engine) as s:
                for a in attempts:
                    s.add(
                        AlertDelivery(
                            alert_id=alert.id,
                            attempt=a.attempt,
                            url=shown,
                            status="delivered" if a.ok else "failed",
                            http_status=a.http_status,
                            error=a.error,
                        )
                    )
        except Exception as exc:  # a lost delivery record must not break the caller
            log.warning("could not record alert deliveries: %s", exc)
        if not attempts[-1].ok:
            log.warning(
                "alert webhook delivery failed after %d tries: %s",
                len(attempts),
                attempts[-1].error,
            )

    def acknowledge(self, alert_id: int, *, actor: str) -> FiredAlert:
        """Mark an alert seen (the console's banner hides acknowledged alerts)."""
        with transaction(self.engine) as s:
            row = s.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"there is no alert {alert_id}; `gatehouse alerts list` shows them")
            if row.acknowledged_at is None:
                row.acknowledged_at, row.acknowledged_by = self._now(), actor
                # in the change history with the settings: who silenced which alert, and when
                s.add(
                    SettingsAudit(
                        actor=actor,
                        action="alert.acknowledge",
                        target=row.rule,
                        before={"id": row.id, "acknowledged": False},
                        after={"id": row.id, "acknowledged": True},
                    )
                )
            return FiredAlert.from_row(row)

    def unacknowledged(self, limit: int = 20) -> list[FiredAlert]:
        with transaction(self.engine) as s:
            rows = s.scalars(
                select(Alert)
                .where(Alert.acknowledged_at.is_(None))
                .order_by(Alert.fired_at.desc(), Alert.id.desc())
                .limit(limit)
            )
            return [FiredAlert.from_row(r) for r in rows]

    # ---- reading -----------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[FiredAlert]:
        with transaction(self.engine) as s:
            rows = s.scalars(
                select(Alert).order_by(Alert.fired_at.desc(), Alert.id.desc()).limit(limit)
            )
            return [FiredAlert.from_row(r) for r in rows]

    def deliveries(self, limit: int = 50) -> list[dict[str, Any]]:
        with transaction(self.engine) as s:
            rows = s.scalars(select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(limit))
            return [
                {
                    "alert_id": r.alert_id,
                    "attempt": r.attempt,
                    "created_at": r.created_at.isoformat(),
                    "url": r.url,
                    "status": r.status,
                    "http_status": r.http_status,
                    "error": r.error,
                }
                for r in rows
            ]
