"""The role check at the top of every page script (defence in depth behind the navigation)."""

from __future__ import annotations

import contextlib
from typing import NoReturn

import streamlit as st
from streamlit.errors import StreamlitAPIException

from ..auth import PERMISSION_HELP
from .session import SignedIn, current

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
