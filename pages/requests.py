"""Requests (viewer and up): the audit log in keyset pages, one call's attempts, CSV export."""

import streamlit as st

from gatehouse_core.spend import requestlog
from gatehouse_core.ui import flash, guard, state
from gatehouse_core.ui import requests as ui
from gatehouse_core.ui.errors import shown

guard.require("dashboards")

st.title("Requests")
flash.show()
st.caption("One row per upstream attempt, newest first. Attempts of one call share a request id.")

with shown():
    engine = state.engine()
    params = st.query_params.to_dict()
    filters = ui.pick_filters(ui.apply_link(params))
    cursor = ui.current_cursor()
    page = requestlog.page(engine, filters, after=cursor, limit=ui.PAGE_SIZE)
    if not page.rows:
        st.info("No requests match these filters.", icon=":material/info:")
    else:
        st.dataframe(ui.rows(page.rows), key="requests_table", hide_index=True, width="stretch")
    left, middle, right = st.columns([1, 1, 4])
    left.button("Newer", key="requests_newer", on_click=ui.newer, disabled=ui.page_number() == 1)
    middle.button(
        "Older",
        key="requests_older",
        on_click=ui.older,
        args=(page.next_cursor,),
        disabled=page.next_cursor is None,
    )
    right.caption(f"Page {ui.page_number()} · {len(page.rows)} rows")

    st.subheader("Call detail")
    linked = ui.request_id_param(params)
    ids = list(
        dict.fromkeys([*([linked] if linked else []), *(r["request_id"] for r in page.rows)])
    )
    chosen = st.selectbox(
        "Request id",
        ids,
        index=0 if linked else None,
        placeholder="pick a call from this page",
        key="requests_detail",
    )
    if chosen:
        ui.render_call(engine, chosen)

    st.subheader("Export")
    st.caption(f"CSV of every matching row, newest first, up to {requestlog.EXPORT_MAX_ROWS:,}.")
    if st.button("Prepare CSV", key="requests_export", icon=":material/table:"):
        st.session_state["requests_csv"] = (ui.signature(), ui.export(engine, filters))
    prepared = st.session_state.get("requests_csv")
    if prepared and prepared[0] == ui.signature():
        st.download_button(
            "Download CSV",
            data=prepared[1],
            file_name="gatehouse-requests.csv",
            mime="text/csv",
            key="requests_csv_download",
            icon=":material/download:",
        )
