"""The Budgets & alerts page's data and actions.

Reads and changes go through the core stores the CLI uses (`BudgetStore`, `AlertConfigStore`,
`Alerts`), so validation, messages and the `settings_audit` rows are the CLI's. Every action is
an `on_click` callback that checks the signed-in role again (an admin demoted while the page
was open is refused, not just shown fewer buttons) and reports through `flash`.

Month-to-date spend and open reservations come from the console gateway's budget admitter
(its reservations are this process's calls in flight, every process's with Redis); when the
gateway cannot start, a plain admitter over the same database gives the recorded figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import Engine

from .. import settings
from ..errors import ConfigError
from ..spend.alerts import AlertConfig, AlertConfigStore, Alerts, FiredAlert, parse_thresholds
from ..spend.budget_rules import BudgetRule, BudgetStore, make_rule
from ..spend.budgets import Budgets
from ..spend.forecast import month_forecast
from ..spend.queries import Filters
from . import banner, flash, forms, state
from .errors import message_for
from .format import usd
from .session import current

log = logging.getLogger("gatehouse.console")

BUDGET_FORM = "budgets_set"
PICK_KEY = "budgets_pick"
NEW = "(new budget)"
SCOPE_HELP = {
    "global": "every call",
    "provider": "calls to one provider",
    "source": "calls from one source (cli, console, api, …)",
    "actor": "calls by one user or token (token:NAME)",
}


@dataclass(frozen=True)
class BudgetLine:
    """One budget with the figures the page shows."""

    rule: BudgetRule
    spent_usd: float
    reserved_usd: float
    forecast_usd: float

    @property
    def used(self) -> float:
        """Month-to-date spend as a fraction of the limit (may pass 1)."""
        return self.spent_usd / self.rule.monthly_usd

    @property
    def name(self) -> str:
        return "all calls" if self.rule.scope == "global" else self.rule.value


# ---- reading ------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, on_release=lambda budgets: budgets.close())
def _fallback_admitter(url: str, redis_url: str) -> Budgets:
    return Budgets(state.engine(), redis_url=redis_url or None)


def admitter() -> Budgets:
    """The console gateway's budget admitter, or one of our own if the gateway cannot start."""
    try:
        budgets = state.gateway().budgets
    except Exception as exc:  # e.g. a bad GATEHOUSE_METRICS value: still show the figures
        log.warning("gateway unavailable for budget figures: %s", message_for(exc))
        budgets = None
    if budgets is None:
        budgets = _fallback_admitter(
            state.database_url(), settings.get("GATEHOUSE_REDIS_URL") or ""
        )
    return budgets


def _filters(rule: BudgetRule) -> Filters | None:
    return None if rule.match is None else Filters(**{rule.match[0]: rule.match[1]})


def lines(engine: Engine, budgets: Budgets, now: datetime, zone: ZoneInfo) -> list[BudgetLine]:
    """Every budget with month-to-date spend, open reservations and the month-end forecast."""
    budgets.refresh()  # the page shows the figures as of now, not as of the last few seconds
    spent, held = budgets.spent(), budgets.open_reservations()
    return [
        BudgetLine(
            rule,
            spent.get(rule.key, 0.0),
            held.get(rule.key, 0.0),
            month_forecast(engine, now, zone, _filters(rule)).forecast_usd,
        )
        for rule in budgets.rules()
    ]


def rows(found: list[BudgetLine]) -> list[dict[str, Any]]:
    return [
        {
            "Scope": b.rule.scope,
            "Name": b.name,
            "Monthly limit": usd(b.rule.monthly_usd),
            "Action": b.rule.action,
            "Spent this month": usd(b.spent_usd),
            "Open reservations": usd(b.reserved_usd),
            "Forecast": usd(b.forecast_usd),
            "Used": round(100 * b.used, 1),
        }
        for b in found
    ]


def rule_rows(config: AlertConfig) -> list[dict[str, str]]:
    shown = config.to_json(masked=True)
    return [
        {
            "Rule": "Hourly spend",
            "Setting": f"{usd(config.hourly_spend_usd)} in one hour"
            if config.hourly_spend_usd
            else "off",
        },
        {
            "Rule": "Budget thresholds",
            "Setting": ", ".join(f"{t}%" for t in config.budget_thresholds),
        },
        {"Rule": "Provider cooldown", "Setting": "on (once per provider every 10 minutes)"},
        {
            "Rule": "Webhook",
            "Setting": (
                f"{shown['webhook_url']} · "
                + (f"signed with ${config.secret_env}" if config.secret_env else "unsigned")
            )
            if config.webhook_url
            else "none",
        },
    ]


def alert_rows(alerts: list[FiredAlert], deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recent alerts with the outcome of their webhook delivery (the last try's status)."""
    last: dict[int, dict[str, Any]] = {}
    tries: dict[int, int] = {}
    for d in sorted(deliveries, key=lambda d: (d["alert_id"] or 0, d["attempt"])):
        if d["alert_id"] is not None:
            last[d["alert_id"]] = d
            tries[d["alert_id"]] = tries.get(d["alert_id"], 0) + 1
    out = []
    for a in alerts:
        d = last.get(a.id)
        delivery = "not sent"
        if d is not None:
            code = f" (HTTP {d['http_status']})" if d["http_status"] else ""
            delivery = f"{d['status']}{code} after {tries[a.id]} try(s)"
        out.append(
            {
                "Id": a.id,
                "Fired": f"{a.fired_at:%Y-%m-%d %H:%M}",
                "Kind": a.kind,
                "Alert": a.text,
                "Webhook": delivery,
                "Acknowledged": f"{a.acknowledged_at:%Y-%m-%d %H:%M}" if a.acknowledged_at else "",
            }
        )
    return out


def delivery_rows(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "Alert": d["alert_id"],
            "Try": d["attempt"],
            "At": d["created_at"][:19].replace("T", " "),
            "To": d["url"],
            "Status": d["status"],
            "HTTP": d["http_status"],
            "Error": d["error"] or "",
        }
        for d in deliveries
    ]


# ---- actions (on_click callbacks) ---------------------------------------------------------


def _allowed(permission: str, what: str) -> str | None:
    """The signed-in username if their role may `permission` now; else an error is queued."""
    user = current()
    if user is None or not user.can(permission):
        role = user.role if user else "signed-out"
        flash.push("error", f"Your role ({role}) may not {what}. Ask an admin.")
        return None
    return user.username


def _after_budget_change() -> None:
    """The console's gateway sees a changed budget at once, not after its refresh interval."""
    try:
        admitter().refresh()
    except Exception as exc:
        log.warning("budget refresh after a change failed: %s", message_for(exc))


def fill_form() -> None:
    """Put the picked budget's values into the form (on_change of the picker)."""
    ss = st.session_state
    picked = ss.get(PICK_KEY, NEW)
    forms.clear_errors(BUDGET_FORM)
    if picked == NEW:
        ss["budgets_scope"], ss["budgets_value"] = "global", ""
        ss["budgets_monthly"], ss["budgets_action"] = None, "block"
        return
    for rule in BudgetStore(state.engine()).list_rules():
        if rule.key == picked:
            ss["budgets_scope"], ss["budgets_value"] = rule.scope, rule.value
            ss["budgets_monthly"], ss["budgets_action"] = rule.monthly_usd, rule.action


def save_budget() -> None:
    actor = _allowed("budgets.edit", "change budgets")
    if actor is None:
        return
    ss = st.session_state
    scope, value = ss.get("budgets_scope", "global"), ss.get("budgets_value", "")
    monthly, action = ss.get("budgets_monthly"), ss.get("budgets_action", "block")
    if scope == "global":
        value = ""  # the form keeps a name typed for another scope; the global budget has none
    try:
        if monthly is None:
            raise ConfigError("enter the monthly budget in USD, e.g. 50")
        rule = BudgetStore(state.engine()).set(
            make_rule(scope, value, float(monthly), action), actor=actor
        )
    except Exception as exc:
        forms.set_errors(BUDGET_FORM, {forms.GENERAL: message_for(exc)})
        return
    forms.clear_errors(BUDGET_FORM)
    _after_budget_change()
    ss[PICK_KEY] = rule.key
    flash.push(
        "success", f"Set {rule.label}: {usd(rule.monthly_usd)} a month, action {rule.action}."
    )


def remove_budget() -> None:
    actor = _allowed("budgets.edit", "change budgets")
    if actor is None:
        return
    ss = st.session_state
    picked = ss.get(PICK_KEY, NEW)
    if picked == NEW:
        flash.push("error", "Pick the budget to remove first.")
        return
    if not ss.get("budgets_remove_confirm"):
        flash.push("warning", "Tick “Yes, remove it” to remove the budget.")
        return
    scope, _, value = picked.partition(":")
    try:
        rule = BudgetStore(state.engine()).remove(scope, value, actor=actor)
    except Exception as exc:
        flash.push_error(exc)
        return
    ss["budgets_remove_confirm"] = False
    ss[PICK_KEY] = NEW
    fill_form()
    _after_budget_change()
    flash.push("success", f"Removed {rule.label}.")


def save_hourly() -> None:
    actor = _allowed("budgets.edit", "change alert rules")
    if actor is None:
        return
    amount = st.session_state.get("alerts_hourly")
    try:
        config = AlertConfigStore(state.engine()).set_hourly_spend(
            None if amount is None else float(amount), actor=actor
        )
    except Exception as exc:
        flash.push_error(exc)
        return
    if config.hourly_spend_usd is None:
        flash.push("success", "The hourly spend alert is off.")
    else:
        flash.push("success", f"Alert when an hour's spend reaches {usd(config.hourly_spend_usd)}.")


def save_thresholds() -> None:
    actor = _allowed("budgets.edit", "change alert rules")
    if actor is None:
        return
    text = st.session_state.get("alerts_thresholds", "")
    try:
        config = AlertConfigStore(state.engine()).set_budget_thresholds(
            parse_thresholds(text), actor=actor
        )
    except Exception as exc:
        flash.push_error(exc)
        return
    shown = ", ".join(f"{t}%" for t in config.budget_thresholds)
    flash.push("success", f"Budgets alert at {shown} of their monthly amount.")


def save_webhook(remove: bool = False) -> None:
    actor = _allowed("budgets.edit", "change the alert webhook")
    if actor is None:
        return
    ss = st.session_state
    url = None if remove else (ss.get("alerts_webhook_url") or "").strip()
    secret_env = None if remove else (ss.get("alerts_webhook_secret_env") or "").strip() or None
    if not remove and not url:
        flash.push("error", "Enter the webhook URL (https://…), or remove the webhook.")
        return
    try:
        config = AlertConfigStore(state.engine()).set_webhook(url, secret_env, actor=actor)
    except Exception as exc:
        flash.push_error(exc)
        return
    ss["alerts_webhook_url"] = ""  # the stored URL may hold a token in its path: not echoed
    if config.webhook_url is None:
        flash.push("success", "Alerts are no longer delivered to a webhook.")
        return
    shown = config.to_json(masked=True)["webhook_url"]
    signed = f", signed with ${config.secret_env}" if config.secret_env else ", unsigned"
    flash.push("success", f"Alerts are delivered to {shown}{signed}. Try it: Send test.")


def send_test() -> None:
    if _allowed("budgets.edit", "send a test alert") is None:
        return
    try:
        attempts = Alerts(state.engine()).send_test()
    except Exception as exc:
        flash.push_error(exc)
        return
    finally:
        banner.forget()
    if attempts and attempts[-1].ok:
        flash.push("success", f"The test alert was delivered (try {attempts[-1].attempt}).")
    else:
        error = attempts[-1].error if attempts else "nothing was sent"
        flash.push("error", f"The test alert was not delivered: {error}")


def acknowledge_picked() -> None:
    ids = list(st.session_state.get("alerts_ack_pick") or [])
    if not ids:
        flash.push("warning", "Pick the alerts to acknowledge first.")
        return
    if done := banner.acknowledge(ids):
        st.session_state["alerts_ack_pick"] = []
        flash.push("success", f"Acknowledged {done} alert(s).")


def acknowledge_all() -> None:
    user = current()
    if user is None or not user.can("alerts.ack"):
        banner.acknowledge([])  # queues the refusal
        return
    ids = [a.id for a in Alerts(state.engine()).unacknowledged(limit=1000)]
    if done := banner.acknowledge(ids):
        st.session_state["alerts_ack_pick"] = []
        flash.push("success", f"Acknowledged {done} alert(s).")
