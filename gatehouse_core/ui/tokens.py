"""The API tokens page's data and actions (admin): create, list with usage, revoke.

Everything goes through `TokenStore` (the CLI's validation, messages and audit rows). A new
token is kept in session state for exactly one run, shown with a copy box, then forgotten:
neither the token nor its hash is ever put on a page again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from ..schema import utcnow
from ..tokens import TokenInfo, TokenStore, TokenUsage, display, month_to_date_usage
from . import flash, forms, state
from .errors import message_for
from .format import ago, usd, when
from .session import current

CREATE_FORM = "tokens_create"
FIELDS = {"name", "role", "monthly_usd", "rpm", "models", "expires"}
SHOWN_ONCE_KEY = "tokens_shown_once"
REVOKE_KEY = "tokens_revoke_pick"


def store() -> TokenStore:
    return TokenStore(state.engine())


def rows(tokens: list[TokenInfo], usage: dict[str, TokenUsage], now: datetime) -> list[dict]:
    """The table: what may be shown about each token (display prefix, never the token)."""
    out: list[dict[str, Any]] = []
    for t in tokens:
        used = usage.get(t.name) or TokenUsage()
        out.append(
            {
                "Name": t.name,
                "Token": display(t.prefix),
                "Role": t.role,
                "Status": t.status(now),
                "Monthly limit": usd(t.monthly_usd) if t.monthly_usd is not None else "none",
                "Spent this month": usd(used.cost_usd),
                "Calls this month": used.calls,
                "Requests/min": t.rpm if t.rpm is not None else "none",
                "Models": ", ".join(t.models) if t.models is not None else "any",
                "Expires": when(t.expires_at) if t.expires_at else "never",
                "Last use": ago(t.last_used_at, now),
                "Created": f"{when(t.created_at)} by {t.created_by}",
            }
        )
    return out


def listing() -> tuple[list[TokenInfo], dict[str, TokenUsage], datetime]:
    now = utcnow()
    return store().list(), month_to_date_usage(state.engine(), now), now


def shown_once() -> tuple[str, str] | None:
    """(name, token) to show on this run only; popped, so a rerun no longer has it."""
    return st.session_state.pop(SHOWN_ONCE_KEY, None)


def _admin() -> str | None:
    user = current()
    if user is None or not user.can("tokens"):
        role = user.role if user else "signed-out"
        flash.push("error", f"Your role ({role}) may not manage API tokens.")
        return None
    return user.username


def create() -> None:
    actor = _admin()
    if actor is None:
        return
    ss = st.session_state
    monthly, rpm = ss.get("tokens_monthly"), ss.get("tokens_rpm")
    models = (ss.get("tokens_models") or "").strip() or None
    expires = (ss.get("tokens_expires") or "").strip() or None
    try:
        info, token = store().create(
            ss.get("tokens_name", ""),
            ss.get("tokens_role", "operator"),
            actor=actor,
            monthly_usd=None if monthly is None else float(monthly),
            rpm=None if rpm is None else int(rpm),
            models=models,
            expires=expires,
        )
    except Exception as exc:
        forms.set_errors(CREATE_FORM, forms.validation_errors(exc))
        return
    forms.clear_errors(CREATE_FORM)
    for key in ("tokens_name", "tokens_models", "tokens_expires"):
        ss[key] = ""
    ss["tokens_monthly"] = ss["tokens_rpm"] = None
    ss[SHOWN_ONCE_KEY] = (info.name, token)
    flash.push("success", f"Created the API token {info.name} ({info.role}).")


def revoke() -> None:
    actor = _admin()
    if actor is None:
        return
    ss = st.session_state
    name = ss.get(REVOKE_KEY)
    if not name:
        flash.push("error", "Pick the token to revoke first.")
        return
    if not ss.get("tokens_revoke_confirm"):
        flash.push("warning", f"Tick “Yes, revoke {name}” to revoke it.")
        return
    try:
        info = store().revoke(name, actor=actor)
    except Exception as exc:
        flash.push("error", message_for(exc))
        return
    ss["tokens_revoke_confirm"] = False
    flash.push(
        "success", f"Revoked the API token {info.name}: calls with it are refused from now on."
    )
