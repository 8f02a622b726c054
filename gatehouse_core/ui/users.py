"""Helpers of the Users page (admin): the users table, first passwords, and the actions.

Every action is an `on_click` callback that calls `UserStore`/`SessionStore` (which audit
each change) and reports through `flash`; refusals such as "the last enabled admin" come
back as the store's own message. A generated password is shown once, then forgotten.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import streamlit as st

from ..auth import UserInfo
from . import flash, forms, guard, state
from .errors import message_for
from .session import current

ADD_FORM = "users_add"
NEW_PASSWORD_KEY = "users_shown_once"
PICK_KEY = "users_pick"


def generate_password() -> str:
    """A first password: 16 random URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def status(user: UserInfo) -> str:
    if user.disabled:
        return "disabled"
    if user.locked_until:
        return f"locked until {user.locked_until:%H:%M} UTC"
    return "active"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def rows(users: list[UserInfo]) -> list[dict[str, Any]]:
    sessions = state.sessions()
    return [
        {
            "Username": u.username,
            "Role": u.role,
            "Status": status(u),
            "Signed in (sessions)": len(sessions.list_for(u.username)),
            "Last sign-in": _when(u.last_login_at),
            "Created": _when(u.created_at),
        }
        for u in users
    ]


def _actor() -> str:
    user = current()
    return user.username if user else "console"


def _show_once(username: str, password: str, what: str) -> None:
    st.session_state[NEW_PASSWORD_KEY] = (username, password, what)


def shown_once() -> tuple[str, str, str] | None:
    """The generated password to show on this run only (then it is gone for good)."""
    return st.session_state.pop(NEW_PASSWORD_KEY, None)


# ---- actions (on_click callbacks) -------------------------------------------------------


@guard.action("users")  # callbacks run before the page's guard
def add_user() -> None:
    ss = st.session_state
    username, role = ss.get("users_add_username", ""), ss.get("users_add_role", "viewer")
    typed = ss.get("users_add_password", "")
    ss["users_add_password"] = ""  # never sent back
    password = typed or generate_password()
    try:
        info = state.users().create(username, password, role, actor=_actor())
    except Exception as exc:
        forms.set_errors(ADD_FORM, forms.validation_errors(exc))
        return
    forms.clear_errors(ADD_FORM)
    ss["users_add_username"] = ""
    if not typed:
        _show_once(info.username, password, "first password")
    flash.push("success", f"Added {info.username} ({info.role}).")
    ss[PICK_KEY] = info.username


def _run(action: Any, done: str) -> None:
    try:
        action()
    except Exception as exc:
        flash.push("error", message_for(exc))
        return
    flash.push("success", done)


@guard.action("users")
def set_role(username: str) -> None:
    role = st.session_state.get("users_role", "")
    _run(
        lambda: state.users().set_role(username, role, actor=_actor()), f"{username} is now {role}."
    )


@guard.action("users")
def set_disabled(username: str, disabled: bool) -> None:
    done = (
        f"Disabled {username}; their sessions have ended."
        if disabled
        else f"Enabled {username}; they can sign in again."
    )
    _run(lambda: state.users().set_disabled(username, disabled, actor=_actor()), done)


@guard.action("users")
def unlock(username: str) -> None:
    _run(lambda: state.users().unlock(username, actor=_actor()), f"Unlocked {username}.")


@guard.action("users")
def reset_password(username: str) -> None:
    password = generate_password()
    try:
        state.users().set_password(username, password, actor=_actor())
    except Exception as exc:
        flash.push("error", message_for(exc))
        return
    _show_once(username, password, "new password")
    flash.push("success", f"Reset the password of {username}; their sessions have ended.")


@guard.action("users")
def revoke_sessions(username: str) -> None:
    ended = state.sessions().revoke_user(username, actor=_actor(), reason="revoked by an admin")
    flash.push("success", f"Signed {username} out everywhere ({ended} session(s) ended).")
