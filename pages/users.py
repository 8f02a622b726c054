"""Users (admin): list, add, change role, disable/enable, unlock, reset password, sign out."""

import streamlit as st

from gatehouse_core.auth import MIN_PASSWORD_LENGTH, ROLES
from gatehouse_core.ui import flash, forms, guard, state
from gatehouse_core.ui import users as ui

me = guard.require("users")

st.title("Users")
st.caption(
    "Who may sign in to this console and with which role. Every change is in the settings "
    "audit; disabling a user or resetting a password signs them out everywhere."
)
flash.show()

once = ui.shown_once()
if once:
    username, password, what = once
    st.warning(
        f"The {what} of **{username}** is below. It is shown only this once: pass it on "
        "securely now.",
        icon=":material/key:",
    )
    st.code(password, language=None)

users = state.users().list_users()
st.dataframe(ui.rows(users), hide_index=True, width="stretch", key="users_table")

left, right = st.columns(2, gap="large")

with left:
    st.subheader("Add a user")
    forms.leftover_errors(ui.ADD_FORM, {"username", "password", "role"})
    with st.form("users_add_form"):
        st.text_input("Username", key="users_add_username", placeholder="e.g. bob")
        forms.field_error(ui.ADD_FORM, "username")
        st.selectbox("Role", ROLES, index=ROLES.index("viewer"), key="users_add_role")
        forms.field_error(ui.ADD_FORM, "role")
        st.text_input(
            "First password (optional)",
            type="password",
            key="users_add_password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters. Leave empty to generate one, "
            "shown once.",
        )
        forms.field_error(ui.ADD_FORM, "password")
        st.form_submit_button(
            "Add user", key="users_add_submit", type="primary", on_click=ui.add_user
        )

with right:
    st.subheader("Manage a user")
    names = [u.username for u in users]
    if st.session_state.get(ui.PICK_KEY) not in names:
        st.session_state[ui.PICK_KEY] = names[0]
    chosen = st.selectbox("User", names, key=ui.PICK_KEY)
    picked = next(u for u in users if u.username == chosen)
    st.markdown(f"**{picked.username}** · {picked.role} · {ui.status(picked)}")

    role_col, button_col = st.columns([2, 1], vertical_alignment="bottom")
    role_col.selectbox("Role", ROLES, index=ROLES.index(picked.role), key="users_role")
    button_col.button(
        "Change role", key="users_set_role", on_click=ui.set_role, args=(picked.username,)
    )

    if picked.disabled:
        st.button(
            "Enable", key="users_enable", on_click=ui.set_disabled, args=(picked.username, False)
        )
    else:
        st.button(
            "Disable", key="users_disable", on_click=ui.set_disabled, args=(picked.username, True)
        )
    if picked.locked_until:
        st.button("Unlock", key="users_unlock", on_click=ui.unlock, args=(picked.username,))
    st.button(
        "Reset password",
        key="users_reset_password",
        on_click=ui.reset_password,
        args=(picked.username,),
        help="Generates a new password, shown once, and signs the user out everywhere.",
    )
    sessions = state.sessions().list_for(picked.username)
    st.button(
        f"Sign out everywhere ({len(sessions)})",
        key="users_revoke_sessions",
        on_click=ui.revoke_sessions,
        args=(picked.username,),
        disabled=not sessions,
    )
    if sessions:
        st.dataframe(
            [
                {
                    "Since": s.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Last seen": s.last_seen_at.strftime("%Y-%m-%d %H:%M"),
                    "Browser": s.user_agent or "—",
                    "Address": s.client_address or "—",
                    "Via": s.via,
                }
                for s in sessions
            ],
            hide_index=True,
            key="users_sessions",
        )
