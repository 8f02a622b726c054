"""One-shot messages that survive a rerun: a callback records them, the page shows them."""

from __future__ import annotations

import streamlit as st

from .errors import message_for
from .format import clip

_KEY = "gh_flash"
_ICONS = {
    "success": ":material/check_circle:",
    "error": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
}


def push(kind: str, message: str, *, slot: str = "page") -> None:
    """Queue a message (`success`, `warning`, `error` or `info`) for the next `show(slot)`."""
    st.session_state.setdefault(_KEY, []).append((slot, kind, clip(message)))


def push_error(exc: BaseException, *, slot: str = "page") -> None:
    push("error", message_for(exc), slot=slot)


def show(slot: str = "page") -> None:
    """Render and forget the queued messages of `slot`."""
    queued = st.session_state.get(_KEY, [])
    keep = [item for item in queued if item[0] != slot]
    for _, kind, message in (item for item in queued if item[0] == slot):
        getattr(st, kind)(message, icon=_ICONS.get(kind))
    st.session_state[_KEY] = keep
