"""Form helpers: per-field error messages kept across the rerun a callback triggers, and
parsing of the text fields the provider form uses."""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from ..errors import ValidationError

GENERAL = "_general"


def _errors_key(form: str) -> str:
    return f"{form}__errors"


def errors(form: str) -> dict[str, str]:
    return dict(st.session_state.get(_errors_key(form), {}))


def set_errors(form: str, found: Mapping[str, str]) -> None:
    st.session_state[_errors_key(form)] = dict(found)


def clear_errors(form: str) -> None:
    st.session_state.pop(_errors_key(form), None)


def field_error(form: str, field: str) -> None:
    """Show the error of one field, right under it."""
    message = errors(form).get(field)
    if message:
        st.error(message, icon=":material/error:")


def leftover_errors(form: str, shown_fields: set[str]) -> None:
    """Show errors that belong to no field of the form (e.g. across providers)."""
    for field, message in errors(form).items():
        if field not in shown_fields:
            label = "" if field == GENERAL else f"{field.replace('_', ' ')}: "
            st.error(f"{label}{message}", icon=":material/error:")


def validation_errors(exc: Exception) -> dict[str, str]:
    """Field errors from a ValidationError; any other error under GENERAL."""
    from .errors import message_for
    from .format import clip

    if isinstance(exc, ValidationError):  # values are echoed: a huge one must not fill the page
        return {field: clip(message) for field, message in exc.errors.items()}

    return {GENERAL: message_for(exc)}


def parse_headers(text: str) -> tuple[dict[str, str], str | None]:
    """`NAME=VALUE` lines into a dict, or an error naming the first bad line."""
    headers: dict[str, str] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            return headers, f"line {number} ({line!r}) is not NAME=VALUE"
        headers[name.strip()] = value.strip()
    return headers, None


def format_headers(headers: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in headers.items())


def optional_int(value: float | int | None) -> int | None:
    """A number_input value (None when left empty) as a whole number."""
    return None if value is None else int(value)
