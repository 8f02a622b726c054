"""The door: the one-time first-admin form, the sign-in form, and optional SSO (`st.login`).

While no user exists, the setup form is the only page. Otherwise a signed-out session
sees only the sign-in page. Both are hidden one-page navigations, so no other page can be
reached by URL before signing in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ..auth import MIN_PASSWORD_LENGTH, resolve_sso_role
from ..errors import GatehouseError
from ..sessions import SessionStore
from . import flash, forms, nav, session, state
from .errors import message_for

SETUP_FORM = "first_admin"
SIGNIN_FORM = "signin"
SSO_ERROR_KEY = "gh_sso_error"


@dataclass(frozen=True)
class SsoSettings:
    """`[auth]` and `[gatehouse.sso_roles]` from .streamlit/secrets.toml."""

    enabled: bool = False
    providers: tuple[str | None, ...] = ()
    roles: Mapping[str, str] = field(default_factory=dict)


def sso_settings() -> SsoSettings:
    try:
        auth = st.secrets.get("auth")
        gatehouse = st.secrets.get("gatehouse") or {}
    except Exception:  # no secrets.toml at all: SSO is simply off
        return SsoSettings()
    if not auth:
        return SsoSettings()
    named = tuple(k for k, v in auth.items() if isinstance(v, Mapping))
    # `[auth]` with client_id is the default provider; `[auth.NAME]` sections are named ones.
    providers: tuple[str | None, ...] = ((None,) if "client_id" in auth else ()) + named
    return SsoSettings(True, providers or (None,), dict(gatehouse.get("sso_roles") or {}))


def gate() -> session.SignedIn | None:
    """The signed-in user; or None after rendering setup/sign-in/outage (caller stops)."""
    try:
        store, sessions = state.users(), state.sessions()
        user = (
            session.refresh(store, sessions)
            or session.from_cookie(store, sessions)
            or _sso_user(sessions)
        )
        if user is not None:
            return user
        page = (
            nav.door(_sign_in_page, "Sign in", "signin")
            if store.has_users()
            else nav.door(_first_admin_page, "Set up GateHouse", "setup")
        )
    except GatehouseError as exc:
        message = str(exc)
        page = nav.door(lambda: _unavailable(message), "GateHouse", "unavailable")
    nav.remember_requested(page)
    _hide_sidebar()
    page.run()
    session.cookie_script()
    return None


def _hide_sidebar() -> None:
    """No sidebar before sign-in: hide the (empty) shell a signed-out session would keep."""
    st.html(
        "<style>section[data-testid='stSidebar'],[data-testid='stSidebarCollapsedControl'],"
        "[data-testid='stExpandSidebarButton']{display:none !important}</style>"
    )


# ---- first admin -----------------------------------------------------------------------


def _narrow() -> DeltaGenerator:
    """A centred column: the door's forms read better narrow on a wide page."""
    return st.columns([1, 2, 1])[1]


def _first_admin_page() -> None:
    with _narrow():
        _first_admin_form()


def _first_admin_form() -> None:
    st.title("Welcome to GateHouse")
    st.write(
        "No console user exists yet. Create the first **admin** account; it can then add "
        "providers, keys and more users. This form is shown only once."
    )
    forms.leftover_errors(SETUP_FORM, {"username", "password", "confirm"})
    with st.form("first_admin_form"):
        st.text_input("Admin username", key="first_admin_username", placeholder="e.g. alice")
        forms.field_error(SETUP_FORM, "username")
        st.text_input(
            "Password",
            type="password",
            key="first_admin_password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters.",
        )
        forms.field_error(SETUP_FORM, "password")
        st.text_input("Repeat password", type="password", key="first_admin_confirm")
        forms.field_error(SETUP_FORM, "confirm")
        st.form_submit_button(
            "Create admin and sign in",
            key="first_admin_submit",
            type="primary",
            on_click=_create_first_admin,
        )


def _create_first_admin() -> None:
    ss = st.session_state
    username = ss.get("first_admin_username", "")
    password, confirm = ss.get("first_admin_password", ""), ss.get("first_admin_confirm", "")
    ss["first_admin_password"] = ss["first_admin_confirm"] = ""  # never sent back
    if password != confirm:
        forms.set_errors(SETUP_FORM, {"confirm": "the two passwords differ"})
        return
    try:
        info = state.users().create_first_admin(username, password)
    except Exception as exc:
        forms.set_errors(SETUP_FORM, forms.validation_errors(exc))
        return
    forms.clear_errors(SETUP_FORM)
    session.start(state.sessions(), info.username, info.role)
    flash.push("success", f"Welcome, {info.username}. Next: add a provider and its API key.")


# ---- sign-in ---------------------------------------------------------------------------


def _sign_in_page() -> None:
    with _narrow():
        _sign_in_form()


def _sign_in_form() -> None:
    st.title("Sign in to GateHouse")
    notice = session.pop_notice()
    if notice:
        st.info(notice, icon=":material/info:")
    flash.show(SIGNIN_FORM)
    with st.form("signin_form"):
        st.text_input("Username", key="signin_username", autocomplete="username")
        st.text_input(
            "Password", type="password", key="signin_password", autocomplete="current-password"
        )
        st.form_submit_button("Sign in", key="signin_submit", type="primary", on_click=_sign_in)
    _sso_section()


def _sign_in() -> None:
    ss = st.session_state
    password, ss["signin_password"] = ss.get("signin_password", ""), ""  # never sent back
    try:
        info = state.users().authenticate(
            ss.get("signin_username", ""), password, client_address=session.client_address()
        )
        session.start(state.sessions(), info.username, info.role)
    except Exception as exc:  # shown on the form, never as a traceback
        flash.push("error", message_for(exc), slot=SIGNIN_FORM)
        return


# ---- single sign-on --------------------------------------------------------------------


def _sso_user(sessions: SessionStore) -> session.SignedIn | None:
    """An SSO identity (st.user) mapped to a role, or None (refusals are shown on sign-in)."""
    sso = sso_settings()
    if not sso.enabled or not st.user.get("is_logged_in"):
        return None
    try:
        role = resolve_sso_role(
            st.user.get("email"), sso.roles, email_verified=st.user.get("email_verified")
        )
    except GatehouseError as exc:
        st.session_state[SSO_ERROR_KEY] = str(exc)
        return None
    email = str(st.user.get("email")).strip().lower()
    return session.start(sessions, email, role, session.VIA_SSO)


def _sso_section() -> None:
    sso = sso_settings()
    if not sso.enabled:
        return
    st.divider()
    refused = st.session_state.pop(SSO_ERROR_KEY, None)
    if refused:
        st.error(refused, icon=":material/block:")
        if st.button("Sign out of single sign-on", key="sso_logout"):
            st.logout()
        return
    for provider in sso.providers:
        label = f"Sign in with {provider}" if provider else "Sign in with single sign-on"
        if st.button(label, key=f"signin_sso_{provider or 'default'}"):
            st.login(provider) if provider else st.login()


def _unavailable(message: str) -> None:
    st.title("GateHouse cannot start")
    st.error(message, icon=":material/database:")
    st.caption("Fix the setting named above, then reload this page.")
    if st.button("Try again", key="retry_start"):
        st.rerun()
