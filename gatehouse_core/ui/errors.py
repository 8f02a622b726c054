"""The console's error edge: GateHouse errors become `st.error` with cause and fix, never a
traceback; anything unexpected is logged in full and shown as one scrubbed line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from ..errors import GatehouseError
from ..telemetry import scrub
from .format import clip

log = logging.getLogger("gatehouse.console")

# The library's messages name the CLI command that fixes a problem; in the console the fix
# is a button or a page, so the console names that instead.
_CONSOLE_WAYS = [
    (r"set one with `gatehouse providers set-key[^`]*`", "set one on the Providers page"),
    (r"\(gatehouse providers set-key\)", "(Providers page: Replace API key)"),
    (r"`gatehouse providers set-key[^`]*`", "the Providers page (Replace API key)"),
    (r"`gatehouse providers add`", "the Providers page"),
    (r"`gatehouse providers list` shows them", "the Providers page lists them"),
    (r"`gatehouse models refresh`", "Refresh from providers on the Models page"),
    (r"`gatehouse models` lists known models", "the Models page lists known models"),
]


def console_wording(message: str) -> str:
    """A library message with CLI commands replaced by the console's own way to do it."""
    for pattern, replacement in _CONSOLE_WAYS:
        message = re.sub(pattern, replacement, message)
    return message


def message_for(exc: BaseException) -> str:
    """What to show for an error: our messages as written (shortened, in the console's
    words), others as type and scrubbed text."""
    if isinstance(exc, GatehouseError):
        return clip(console_wording(str(exc)))
    log.error("unexpected console error", exc_info=exc)
    return (
        f"Unexpected error ({type(exc).__name__}): {clip(scrub(str(exc)))}. "
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
