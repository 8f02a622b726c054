"""Change history (admin): every configuration change, field by field, secrets masked."""

import streamlit as st

from gatehouse_core import history
from gatehouse_core.ui import flash, guard, state
from gatehouse_core.ui import history as ui
from gatehouse_core.ui.errors import shown
from gatehouse_core.ui.spend import ANY

guard.require("history")

st.title("Change history")
flash.show()
st.caption("Who changed which setting, when, and what it was before. Keys appear only masked.")

with shown():
    engine = state.engine()
    cols = st.columns(3)
    picked = {}
    for col, name in zip(cols, ("actor", "action", "target"), strict=True):
        value = col.selectbox(
            name.capitalize(), [ANY, *history.choices(engine, name)], key=f"history_{name}"
        )
        picked[name] = None if value == ANY else value
    limit = st.select_slider(
        "Changes shown", [25, 50, 100, 250, 500], value=50, key="history_limit"
    )
    changes = history.changes(engine, limit=limit, **picked)
    if changes:
        st.dataframe(ui.rows(changes), key="history_table", hide_index=True, width="stretch")
        st.caption(f"{len(changes)} newest changes")
    else:
        st.info("No change matches these filters.", icon=":material/info:")
