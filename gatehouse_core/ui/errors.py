"""The console's error edge: GateHouse errors become `st.error` with cause and fix, never a
traceback; anything unexpected is logged in full and shown as one scrubbed line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from ..errors import GatehouseError
from ..telemetry import scrub

log = logging.getLogger("gatehouse.console")


def message_for(exc: BaseException) -> str:
    """What to show for an error: our messages as written, others as type and scrubbed text."""
    if isinstance(exc, GatehouseError):
        return str(exc)
    log.error("unexpected console error", exc_info=exc)
    return (
        f"Unexpected error ({type(exc).__name__}): {scrub(str(exc))[:300]}. "
        "The server log has the details."
    )


@contextmanager
def shown() -> Iterator[None]:
    """Run a block; if it raises, show the error in place and carry on with the page.

    `st.stop()`/`st.rerun()` are BaseExceptions, not Exceptions, so they pass through.
    """
    try:
        yield
    except Exception as exc:
        st.error(message_for(exc), icon=":material/error:")
