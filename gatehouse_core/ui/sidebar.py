"""The frame every signed-in page shares: the sidebar (who, sign out, environment, provider
health) and, above the page, the banner of unacknowledged cost alerts (ui/banner.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st
from sqlalchemy.engine import make_url

from ..db import describe_url
from ..errors import GatehouseError
from ..registry import ProviderView
from . import banner, logs, session, state
from .errors import message_for

log = logging.getLogger("gatehouse.console")


@dataclass(frozen=True)
class HealthSummary:
    total: int
    enabled: int
    without_key: list[str]  # enabled providers with a missing or undecryptable key
    cooling_down: list[str]
    failing: list[str]  # last call failed, not (yet) cooling down
    from_gateway: bool


def summarize(views: list[ProviderView], health: list[Any] | None, now: float) -> HealthSummary:
    """Counts for the sidebar from the registry, plus the gateway's health when available."""
    enabled = [v for v in views if v.config.enabled]
    by_name = {h.name: h for h in health or []}
    cooling = [n for n, h in by_name.items() if h.in_cooldown(now)]
    failing = [
        n
        for n, h in by_name.items()
        if n not in cooling
        and h.last_failure_at
        and (h.last_success_at is None or h.last_failure_at > h.last_success_at)
    ]
    return HealthSummary(
        total=len(views),
        enabled=len(enabled),
        without_key=[v.name for v in enabled if v.key_status != "ok"],
        cooling_down=sorted(cooling),
        failing=sorted(failing),
        from_gateway=health is not None,
    )


def gateway_health() -> list[Any] | None:
    """The gateway's in-process provider health, or None when the gateway is unavailable."""
    try:
        return state.gateway().health()
    except Exception as exc:  # the sidebar must render even when the gateway cannot start
        log.warning("gateway health unavailable: %s", message_for(exc))
        return None


def render(user: session.SignedIn) -> None:
    """The whole sidebar at once (health as of before the page ran); prefer `around`."""
    with around(user):
        pass


@contextmanager
def around(user: session.SignedIn) -> Iterator[None]:
    """The sidebar around the page: who and environment first, provider health again after
    the page ran, so it includes the calls this run made."""
    logs.configure_once()
    with st.sidebar:
        _who(user)
        st.divider()
        _environment()
        health = st.empty()
    # Drawn before the page too: a page that calls st.stop() ends the run, and nothing
    # drawn after that reaches the browser.
    with health.container():
        _providers()
    banner.render(user)
    yield
    with health.container():
        _providers()


def _who(user: session.SignedIn) -> None:
    via = " · single sign-on" if user.via == session.VIA_SSO else ""
    st.markdown(f":material/account_circle: **{user.username}**  \n{user.role}{via}")
    if st.button("Sign out", key="signout", icon=":material/logout:", width="stretch"):
        session.sign_out()


def _environment() -> None:
    url = state.database_url()
    kind = make_url(url).get_backend_name()
    st.caption("Environment")
    st.markdown(f":material/database: **{kind}**  \n`{describe_url(url)}`")
    try:
        dev_key = state.box().is_dev_key
    except GatehouseError as exc:
        st.error(str(exc), icon=":material/key_off:")
        return
    if dev_key:
        st.warning(
            "**Development secrets key in use.** API keys are encrypted with a key generated "
            "on this machine. Set GATEHOUSE_SECRETS_KEY (`gatehouse secrets generate-key`) "
            "before storing real keys.",
            icon=":material/warning:",
        )
    else:
        st.markdown(":material/lock: secrets key from GATEHOUSE_SECRETS_KEY")


def _providers() -> None:
    st.caption("Providers")
    try:
        views = state.registry().providers()
    except GatehouseError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    summary = summarize(views, gateway_health(), time.monotonic())
    if summary.total == 0:
        st.markdown(":material/warning: no provider configured")
        return
    st.markdown(f":material/hub: **{summary.enabled}** of {summary.total} enabled")
    problems = [
        (summary.without_key, "without a usable key"),
        (summary.cooling_down, "cooling down"),
        (summary.failing, "failing"),
    ]
    for names, what in problems:
        if names:
            st.markdown(f":orange[:material/warning: {', '.join(names)} {what}]")
    if not any(names for names, _ in problems) and summary.enabled:
        st.markdown(":green[:material/check_circle: keys set, no recent failures]")
