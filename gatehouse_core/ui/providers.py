"""Rendering helpers for the Providers page: the table rows and the add/edit form fields.

Widget keys are `provider_add_<field>` and `provider_edit_<field>` so browser tests can find
them (`.st-key-provider_add_name`). The API key field is a password field and is emptied
after every submit, so a saved key is never sent back to the browser.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from ..providers import PROVIDER_TYPES, ProviderConfig, RateLimit
from ..registry import ProviderView
from . import format, forms

FIELDS = (
    "name",
    "type",
    "base_url",
    "default_model",
    "priority",
    "is_default",
    "enabled",
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_requests",
    "headers",
    "api_key",
)
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "concurrent_requests")


def key(prefix: str, field: str) -> str:
    return f"{prefix}_{field}"


# ---- table -----------------------------------------------------------------------------


def limits_text(limit: RateLimit) -> str:
    parts = [
        f"{format.tokens(limit.requests_per_minute)} rpm" if limit.requests_per_minute else "",
        f"{format.tokens(limit.tokens_per_minute)} tpm" if limit.tokens_per_minute else "",
        f"{limit.concurrent_requests} concurrent" if limit.concurrent_requests else "",
    ]
    return " · ".join(p for p in parts if p) or "none"


def key_text(view: ProviderView) -> str:
    if view.key is None:
        return "missing"
    if not view.key.decryptable:
        return f"{view.key.masked} (cannot decrypt)"
    return view.key.masked


def health_text(health: Any | None, now: float) -> str:
    """Last success/failure and cooldown from the gateway's in-process health."""
    if health is None:
        return "no calls yet"
    if health.in_cooldown(now):
        until = format.when(health.cooldown_until_wall) if health.cooldown_until_wall else "soon"
        return f"cooling down until {until}: {health.last_error or 'repeated failures'}"
    parts = [f"ok {format.ago(health.last_success_at)}"] if health.last_success_at else []
    if health.last_failure_at:
        parts.append(f"failed {format.ago(health.last_failure_at)}: {health.last_error or '?'}")
    return " · ".join(parts) or "no calls yet"


def table_rows(
    views: list[ProviderView],
    health: list[Any] | None,
    unknown_models: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per provider, Health right after the name: the column an admin most wants
    must be on screen. Default and Enabled are words, not (unclickable) checkboxes.
    `unknown_models` (catalog.unknown_default_models) marks mistyped default models."""
    by_name = {h.name: h for h in health or []}
    unknown = unknown_models or {}
    now = time.monotonic()
    return [
        {
            "Name": v.name,
            "Health": health_text(by_name.get(v.name), now),
            "Status": ("default · " if v.config.is_default else "")
            + ("enabled" if v.config.enabled else "disabled"),
            "Priority": v.config.priority,
            "Default model": v.config.default_model
            + (" ⚠ not in the catalog" if v.name in unknown else ""),
            "Rate limits": limits_text(v.config.rate_limit),
            "API key": key_text(v),
            "Source": v.config.source,
        }
        for v in views
    ]


# Widths in pixels that add up to less than the main area at 1400 px with the sidebar open
# (938 px): nothing, Health least of all, is off-screen. Type and when the key was set are in
# the Manage section.
TABLE_COLUMNS = {
    "Name": st.column_config.TextColumn(width=110),
    "Health": st.column_config.TextColumn(width=200, help="Last success, failure or cooldown"),
    "Status": st.column_config.TextColumn(width=110),
    "Priority": st.column_config.NumberColumn(width=55, help="1 is tried first"),
    "Default model": st.column_config.TextColumn(width=150),
    "Rate limits": st.column_config.TextColumn(width=100),
    "API key": st.column_config.TextColumn(width=100),
    "Source": st.column_config.TextColumn(width=90),
}


def manage_caption(view: ProviderView) -> str:
    """Type and key details of the provider being managed (kept out of the narrow table)."""
    set_at = f", set {format.when(view.key.rotated_at)}" if view.key else ""
    caption = f"Stored API key: {key_text(view)}{set_at} · type {view.config.type}"
    if view.management_key is not None:  # set from the CLI: `providers set-management-key`
        caption += f" · management key: {view.management_key.masked}"
    return caption


def default_name(views: list[ProviderView]) -> str | None:
    return next((v.name for v in views if v.config.is_default), None)


def default_change(before: str | None, after: str | None) -> str:
    """What a change did to the default provider, for the success message ('' if nothing)."""
    if before == after:
        return ""
    if after is None:
        return "No provider is the default now: enable one and make it the default."
    return f"{after} is now the default provider."


# ---- form ------------------------------------------------------------------------------


def _values(config: ProviderConfig) -> dict[str, Any]:
    values: dict[str, Any] = {
        "type": config.type,
        "base_url": config.base_url,
        "default_model": config.default_model,
        "priority": config.priority,
        "is_default": config.is_default,
        "enabled": config.enabled,
        "headers": forms.format_headers(config.headers),
        "api_key": "",
    }
    values.update({f: getattr(config.rate_limit, f) for f in LIMIT_FIELDS})
    return values


def load_edit_state(prefix: str, config: ProviderConfig) -> None:
    """Put a provider's values into the edit form's widgets (before they are drawn)."""
    for field, value in _values(config).items():
        st.session_state[key(prefix, field)] = value


def _blank(priority: int) -> dict[str, Any]:
    return {"name": "", **_values(ProviderConfig(name="", priority=priority))}


def init_add_state(prefix: str, next_priority: int) -> None:
    """Defaults for the add form's widgets, where nothing was typed yet."""
    for field, value in _blank(next_priority).items():
        st.session_state.setdefault(key(prefix, field), value)


def reset_add_state(prefix: str, next_priority: int) -> None:
    """Empty the add form after a save. Values are overwritten, not dropped: a dropped
    widget value would leave what was typed (the API key) in the browser's field."""
    for field, value in _blank(next_priority).items():
        st.session_state[key(prefix, field)] = value


def render_fields(form: str, prefix: str, *, adding: bool) -> None:
    """The provider fields, each with its validation message right under it. Their values
    come from session state (init_add_state / load_edit_state), never from `value=`."""
    if adding:
        st.text_input(
            "Name",
            key=key(prefix, "name"),
            placeholder="openrouter-primary",
            help="A slug: lowercase letters, digits and dashes.",
        )
        forms.field_error(form, "name")
    left, right = st.columns(2)
    with left:
        st.selectbox("Type", PROVIDER_TYPES, key=key(prefix, "type"))
        forms.field_error(form, "type")
        st.text_input("Base URL", key=key(prefix, "base_url"))
        forms.field_error(form, "base_url")
        st.text_input(
            "Default model",
            key=key(prefix, "default_model"),
            placeholder="anthropic/claude-sonnet-4",
        )
        forms.field_error(form, "default_model")
        # No min_value on number fields: with one, the browser snaps an emptied field to the
        # minimum and blocks an out-of-range value with only a tooltip. read_fields checks
        # the range instead and the message appears under the field.
        st.number_input(
            "Priority (1 is tried first)",
            value=None,
            step=1,
            key=key(prefix, "priority"),
        )
        forms.field_error(form, "priority")
        st.checkbox("Default provider", key=key(prefix, "is_default"))
        forms.field_error(form, "is_default")
        st.checkbox("Enabled", key=key(prefix, "enabled"))
    with right:
        for field, label in (
            ("requests_per_minute", "Requests per minute"),
            ("tokens_per_minute", "Tokens per minute"),
            ("concurrent_requests", "Concurrent requests"),
        ):
            st.number_input(
                label,
                value=None,  # empty means no limit, in the add and the edit form alike
                step=1,
                key=key(prefix, field),
                placeholder="no limit",
            )
            forms.field_error(form, field)
        st.text_area(
            "Extra headers (NAME=VALUE per line)",
            key=key(prefix, "headers"),
            height=80,
            placeholder="X-Title=GateHouse",
        )
        forms.field_error(form, "headers")
        st.text_input(
            "API key" if adding else "Replace API key (leave empty to keep the current one)",
            type="password",
            key=key(prefix, "api_key"),
            autocomplete="off",
            help="Stored encrypted; only its masked form is shown after saving.",
        )
        forms.field_error(form, "api_key")


def read_fields(prefix: str) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """(config changes, API key or None, form errors found before calling the registry)."""
    ss = st.session_state
    headers, header_error = forms.parse_headers(ss.get(key(prefix, "headers"), ""))
    errors = {"headers": header_error} if header_error else {}
    priority = forms.optional_int(ss.get(key(prefix, "priority")))
    changes: dict[str, Any] = {
        "type": ss.get(key(prefix, "type"), PROVIDER_TYPES[0]),
        "base_url": (ss.get(key(prefix, "base_url")) or "").strip(),
        "default_model": (ss.get(key(prefix, "default_model")) or "").strip(),
        "priority": priority,
        "is_default": bool(ss.get(key(prefix, "is_default"))),
        "enabled": bool(ss.get(key(prefix, "enabled"), True)),
        "headers": headers,
    }
    if priority is None or priority < 1:
        errors["priority"] = "must be a whole number of at least 1 (1 is tried first)"
    for field in LIMIT_FIELDS:
        changes[field] = forms.optional_int(ss.get(key(prefix, field)))
        if changes[field] is not None and changes[field] < 1:
            errors[field] = f"must be at least 1, not {changes[field]}; leave it empty for no limit"
    api_key = (ss.get(key(prefix, "api_key")) or "").strip() or None
    return changes, api_key, errors


def config_from(name: str, changes: Mapping[str, Any]) -> ProviderConfig:
    flat = dict(changes)
    limits = RateLimit(**{f: flat.pop(f) for f in LIMIT_FIELDS})
    return ProviderConfig(name=name.strip(), rate_limit=limits, **flat)


# ---- connection test -------------------------------------------------------------------


def render_verify(report: Mapping[str, Any]) -> None:
    """A VerifyReport (as JSON): reachability, latency, key validity, limit and usage."""
    name = report.get("provider", "?")
    if report.get("ok"):
        st.success(f"{name}: reachable and the key works.", icon=":material/check_circle:")
    else:
        st.error(f"{name}: {report.get('error') or 'the test failed'}", icon=":material/error:")
    if not report.get("reachable"):
        return
    valid = report.get("key_valid")
    cols = st.columns(4)
    cols[0].metric("Models endpoint", format.ms(report.get("models_latency_ms")))
    cols[1].metric("Key", {True: "valid", False: "rejected", None: "not checked"}[valid])
    limit = report.get("key_limit")
    cols[2].metric("Key limit", format.usd(limit) if limit is not None else "unlimited")
    cols[3].metric("Key usage", format.usd(report.get("key_usage")))
    details = [
        f"label {report['key_label']}" if report.get("key_label") else "",
        f"remaining {format.usd(report['key_limit_remaining'])}"
        if report.get("key_limit_remaining") is not None
        else "",
        "free tier" if report.get("is_free_tier") else "",
        f"{report['model_count']} models listed" if report.get("model_count") else "",
    ]
    if any(details):
        st.caption(" · ".join(d for d in details if d))
