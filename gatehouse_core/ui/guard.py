"""The role check at the top of every page script (defence in depth behind the navigation)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import streamlit as st
from streamlit.errors import StreamlitAPIException

from ..auth import PERMISSION_HELP
from . import flash, state
from .session import SignedIn, current, refresh

Callback = TypeVar("Callback", bound=Callable[..., Any])

ENTRYPOINT = "app.py"


def _to_the_door() -> NoReturn:
    """Reached only by a URL that ran a page without app.py (see ui/nav.py): go to app.py,
    which shows the sign-in form; where that is impossible, say so and stop."""
    with contextlib.suppress(StreamlitAPIException):
        st.switch_page(ENTRYPOINT)
    st.error("Sign in to use GateHouse.", icon=":material/lock:")
    st.markdown("[Go to the sign-in page](/)")
    st.stop()


def require(permission: str) -> SignedIn:
    """The signed-in user if their role grants `permission`; otherwise stop the page."""
    user = current()
    if user is None:
        _to_the_door()
    if not user.can(permission):
        st.error(
            f"Your role ({user.role}) may not {PERMISSION_HELP[permission]}. "
            "Ask an admin if you need access.",
            icon=":material/lock:",
        )
        st.stop()
    return user


def action(permission: str) -> Callable[[Callback], Callback]:
    """Guard a widget callback (`on_click`/`on_change`) with `permission`.

    Streamlit runs callbacks before the script, i.e. before app.py re-reads the user and before
    the page's `require`: a tab opened before the user was demoted or disabled still has the
    button, and its click would go through. The callback re-reads the user first and does
    nothing (a refusal is flashed) when the role may not act."""

    def wrap(callback: Callback) -> Callback:
        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = refresh(state.users(), state.sessions())
            if user is None:
                return None  # signed out: the next run shows the sign-in form
            if not user.can(permission):
                flash.push(
                    "error",
                    f"Your role ({user.role}) may not {PERMISSION_HELP[permission]}; "
                    "nothing was changed.",
                )
                return None
            return callback(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap
