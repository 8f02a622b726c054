"""The console's server log: the `gatehouse` loggers (per-call JSON lines included) go to
the server's stderr, configured once per process however many sessions start."""

from __future__ import annotations

import streamlit as st

from ..telemetry import configure_logging


@st.cache_resource(show_spinner=False)
def _configured() -> bool:
    # GATEHOUSE_LOG_LEVEL decides the level; JSON lines, as for any service.
    configure_logging()
    return True


def configure_once() -> None:
    """Send GateHouse's log records to the console server's log (idempotent)."""
    _configured()
