"""Who is signed in to this browser session, and signing out.

The signed-in user lives only in `st.session_state`: closing the tab or signing out ends
it. Local users are re-read from the database on every run, so disabling a user (CLI or
console) ends their open sessions at their next click.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ..auth import UserStore, can
from ..errors import NotFound

SESSION_KEY = "gh_signed_in"
NOTICE_KEY = "gh_notice"
VIA_PASSWORD = "password"
VIA_SSO = "sso"


@dataclass(frozen=True)
class SignedIn:
    """The user of this session; `username` is the actor recorded in every audit row."""

    username: str
    role: str
    via: str = VIA_PASSWORD

    def can(self, permission: str) -> bool:
        return can(self.role, permission)


def current() -> SignedIn | None:
    # Stored as a plain dict: it survives module reloads and is serializable.
    value = st.session_state.get(SESSION_KEY)
    if not isinstance(value, dict):
        return None
    return SignedIn(value["username"], value["role"], value.get("via", VIA_PASSWORD))


def sign_in(user: SignedIn) -> None:
    st.session_state[SESSION_KEY] = {"username": user.username, "role": user.role, "via": user.via}


def refresh(store: UserStore) -> SignedIn | None:
    """The current user as the database has it now; signs out a disabled or deleted one."""
    user = current()
    if user is None or user.via != VIA_PASSWORD:
        return user
    try:
        info = store.get(user.username)
    except NotFound:
        info = None
    if info is None or info.disabled:
        end_session("Your account was disabled or removed; you have been signed out.")
        return None
    if info.role != user.role:
        user = SignedIn(user.username, info.role, user.via)
        sign_in(user)
    return user


def end_session(notice: str | None = None) -> None:
    """Forget everything this session held (widgets, chat, forms), keeping only a notice."""
    st.session_state.clear()
    if notice:
        st.session_state[NOTICE_KEY] = notice


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


def sign_out() -> None:
    """End the session; an SSO user is also signed out of the identity cookie."""
    user = current()
    end_session("You have been signed out.")
    if user is not None and user.via == VIA_SSO:
        st.logout()
    else:
        st.rerun()
