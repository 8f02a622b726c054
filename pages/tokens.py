"""API tokens (admin): create (shown once), list with usage this month, revoke."""

import streamlit as st

from gatehouse_core.auth import ROLES
from gatehouse_core.ui import flash, forms, guard
from gatehouse_core.ui import tokens as ui
from gatehouse_core.ui.errors import shown

guard.require("tokens")

st.title("API tokens")
st.caption(
    "Bearer tokens for the HTTP API (`Authorization: Bearer gh_…`). Calls made with a token "
    "are audited as `token:NAME`; only a SHA-256 hash of each token is stored."
)
flash.show()

once = ui.shown_once()
if once:
    name, token = once
    st.warning(
        f"The API token **{name}** is below. It is shown only this once and cannot be shown "
        "again: copy it into your secret manager now.",
        icon=":material/key:",
    )
    st.code(token, language=None)

with shown():
    tokens, usage, moment = ui.listing()
    if tokens:
        st.dataframe(
            ui.rows(tokens, usage, moment), key="tokens_table", hide_index=True, width="stretch"
        )
    else:
        st.info("No API tokens yet.", icon=":material/info:")

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Create a token")
        forms.leftover_errors(ui.CREATE_FORM, ui.FIELDS)
        with st.form("tokens_create_form"):
            st.text_input("Name", key="tokens_name", placeholder="e.g. billing-worker")
            forms.field_error(ui.CREATE_FORM, "name")
            st.selectbox("Role", ROLES, index=ROLES.index("operator"), key="tokens_role")
            forms.field_error(ui.CREATE_FORM, "role")
            st.number_input(
                "Monthly budget (USD, optional)",
                key="tokens_monthly",
                value=None,
                step=10.0,
                format="%.2f",
            )
            forms.field_error(ui.CREATE_FORM, "monthly_usd")
            st.number_input("Requests per minute (optional)", key="tokens_rpm", value=None, step=1)
            forms.field_error(ui.CREATE_FORM, "rpm")
            st.text_input(
                "Allowed models (optional)",
                key="tokens_models",
                placeholder="openai/*, anthropic/claude-*",
                help="Comma-separated model ids with * or ? wildcards; empty allows any model.",
            )
            forms.field_error(ui.CREATE_FORM, "models")
            st.text_input(
                "Expires after (optional)",
                key="tokens_expires",
                placeholder="30d, 12h, 2w",
                help="Empty: the token never expires.",
            )
            forms.field_error(ui.CREATE_FORM, "expires")
            st.form_submit_button(
                "Create token", key="tokens_create", type="primary", on_click=ui.create
            )

    with right:
        st.subheader("Revoke a token")
        active = [t.name for t in tokens if t.status(moment) == "active"]
        if not active:
            st.caption("No active token.")
        else:
            if st.session_state.get(ui.REVOKE_KEY) not in active:
                st.session_state[ui.REVOKE_KEY] = active[0]
            picked = st.selectbox("Token", active, key=ui.REVOKE_KEY)
            st.checkbox(f"Yes, revoke {picked}", key="tokens_revoke_confirm")
            st.button("Revoke", key="tokens_revoke", on_click=ui.revoke)
