"""Who is signed in to this browser session, the session cookie's hand-off, and signing out.

Signing in creates a server-side console session (gatehouse_core/sessions.py). This Streamlit
session keeps only the session's id in `st.session_state`; the browser gets the session's
token as an HttpOnly cookie through a one-time ticket (`handoff`), so a reload, a new tab or
another console replica finds the session again (`from_cookie`). Every run re-checks the
session and, for local users, the user row: a revoked or expired session, or a disabled user,
is signed out at the next click.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import streamlit as st

from ..auth import UserStore, can
from ..errors import NotFound
from ..sessions import COOKIE_NAME, SessionInfo, SessionStore

SESSION_KEY = "gh_signed_in"
NOTICE_KEY = "gh_notice"
HANDOFF_KEY = "gh_handoff_ticket"
SIGNOUT_KEY = "gh_clear_cookie"
VIA_PASSWORD = "password"
VIA_SSO = "sso"
HANDOFF_SCRIPT = "/auth/handoff.js"


@dataclass(frozen=True)
class SignedIn:
    """The user of this session; `username` is the actor recorded in every audit row."""

    username: str
    role: str
    via: str = VIA_PASSWORD
    session_id: int | None = None

    def can(self, permission: str) -> bool:
        return can(self.role, permission)


def current() -> SignedIn | None:
    # Stored as a plain dict: it survives module reloads and is serializable.
    value = st.session_state.get(SESSION_KEY)
    if not isinstance(value, dict):
        return None
    return SignedIn(
        value["username"], value["role"], value.get("via", VIA_PASSWORD), value.get("session_id")
    )


def sign_in(user: SignedIn) -> None:
    st.session_state[SESSION_KEY] = {
        "username": user.username,
        "role": user.role,
        "via": user.via,
        "session_id": user.session_id,
    }


def start(sessions: SessionStore, username: str, role: str, via: str = VIA_PASSWORD) -> SignedIn:
    """Create the server-side session for a user who just signed in, and queue the cookie."""
    new = sessions.create(
        username, role, via=via, user_agent=user_agent(), client_address=client_address()
    )
    st.session_state[HANDOFF_KEY] = new.ticket
    user = SignedIn(username, role, via, new.info.id)
    sign_in(user)
    return user


def client_address() -> str | None:
    """The browser's address as the server saw it; None outside a browser (AppTest)."""
    try:
        value = st.context.ip_address
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def user_agent() -> str | None:
    try:
        value = st.context.headers.get("User-Agent")
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE_NAME)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def refresh(store: UserStore, sessions: SessionStore) -> SignedIn | None:
    """The current user as the database has it now; signs out an ended session or user."""
    user = current()
    if user is None:
        return None
    user = _checked(store, user)  # first: "disabled" says more than "session ended"
    tracked = user is not None and user.session_id is not None
    if tracked and sessions.resolve_id(user.session_id) is None:
        end_session("Your session has ended (signed out, expired or revoked). Sign in again.")
        return None
    return user


def from_cookie(store: UserStore, sessions: SessionStore) -> SignedIn | None:
    """The user of the browser's session cookie (a reload, a new tab, another replica)."""
    info: SessionInfo | None = sessions.resolve(_cookie_token())
    if info is None:
        return None
    user = _checked(store, SignedIn(info.username, info.role, info.via, info.id))
    if user is not None:
        sign_in(user)
    return user


def _checked(store: UserStore, user: SignedIn) -> SignedIn | None:
    """A local user re-read from the database (role changes apply; disabled means out)."""
    if user.via != VIA_PASSWORD:
        return user
    try:
        info = store.get(user.username)
    except NotFound:
        info = None
    if info is None or info.disabled:
        end_session("Your account was disabled or removed; you have been signed out.")
        return None
    if info.role != user.role:
        user = SignedIn(user.username, info.role, user.via, user.session_id)
        sign_in(user)
    return user


def end_session(notice: str | None = None) -> None:
    """Forget everything this session held (widgets, chat, forms), keeping only a notice."""
    st.session_state.clear()
    if notice:
        st.session_state[NOTICE_KEY] = notice


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


def sign_out(sessions: SessionStore | None = None, *, everywhere: bool = False) -> None:
    """End the session server-side (or all of the user's), clear the cookie, show sign-in."""
    from . import state  # here, not at the top: state builds on this module's callers

    sessions = sessions or state.sessions()
    user = current()
    if user is not None:
        if everywhere:
            sessions.revoke_user(user.username, actor=user.username, reason="signed out everywhere")
        elif user.session_id is not None:
            sessions.revoke(user.session_id, actor=user.username)
    end_session(
        "You have been signed out everywhere." if everywhere else "You have been signed out."
    )
    st.session_state[SIGNOUT_KEY] = True
    if user is not None and user.via == VIA_SSO:
        st.logout()
    else:
        st.rerun()


def sign_out_everywhere_button() -> None:
    """Beside the sidebar's Sign out: end this user's sessions in every browser."""
    if st.button(
        "Sign out everywhere",
        key="signout_everywhere",
        icon=":material/devices_off:",
        width="stretch",
        help="End your sessions in every browser and tab, including this one.",
    ):
        sign_out(everywhere=True)


def cookie_script() -> None:
    """Hand the new session's ticket to the browser, or clear the cookie after sign-out.

    The page gets only the one-time ticket (never the token); the script from this origin
    POSTs it to /auth/session, whose response sets the HttpOnly cookie.
    """
    ticket = st.session_state.pop(HANDOFF_KEY, None)
    clear = st.session_state.pop(SIGNOUT_KEY, None)
    if ticket:
        marker = f'<span data-gh-ticket="{html.escape(ticket, quote=True)}"></span>'
    elif clear:
        marker = '<span data-gh-signout="1"></span>'
    else:
        return
    st.html(f'{marker}<script src="{HANDOFF_SCRIPT}"></script>', unsafe_allow_javascript=True)
