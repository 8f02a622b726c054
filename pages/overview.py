"""Overview (every role's home page): month to date, forecast, today, health of the traffic."""

import streamlit as st

from gatehouse_core.ui import flash, guard, overview, state
from gatehouse_core.ui.errors import shown
from gatehouse_core.ui.spend import now, zone

guard.require("dashboards")

st.title("Overview")
flash.show()

with shown():
    tz = zone()
    st.caption(f"Times in {tz.key}. Figures from the hourly rollup of every LLM call.")
    overview.render(overview.load(state.engine(), now(), tz))
