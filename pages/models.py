"""Models (viewer and up): the catalog with prices, recommended models, and (admin) refresh."""

import streamlit as st

from gatehouse_core.catalog import RefreshResult
from gatehouse_core.ui import flash, guard, state
from gatehouse_core.ui import models as ui
from gatehouse_core.ui.errors import shown

user = guard.require("models")

st.title("Models")
st.caption("Model ids, context windows and prices (USD per million tokens) the gateway uses.")
flash.show()


def refresh() -> None:
    providers = [v.config for v in state.registry().providers() if v.config.enabled]
    if not providers:
        st.warning("No enabled provider to refresh from; add one on the Providers page.")
        return
    with st.status("Refreshing the catalog…", expanded=True) as status:

        def progress(result: RefreshResult) -> None:
            if result.ok:
                status.write(f":green[✓] {result.provider}: {result.count} models")
            else:
                status.write(f":red[✗] {result.provider}: {result.error}")

        results = state.catalog().refresh(providers, on_progress=progress)
        ui.forget()
        failed = [r for r in results if not r.ok]
        total = state.catalog().stored_count()  # distinct models, not the sum per provider
        status.update(
            label=f"Refreshed {len(results) - len(failed)} of {len(results)} providers: "
            f"{total} models in the catalog",
            state="error" if failed else "complete",
            expanded=bool(failed),
        )


with shown():
    if user.can("models.refresh") and st.button(
        "Refresh from providers", key="models_refresh", icon=":material/refresh:"
    ):
        refresh()

    search = st.text_input(
        "Search",
        key="models_search",
        placeholder="claude, gpt-4o, llama…",
        icon=":material/search:",
    )
    found = ui.entries(search)
    if found:
        st.dataframe(
            [ui.row(e) for e in found],
            key="models_table",
            hide_index=True,
            width="stretch",
            column_config=ui.COLUMN_CONFIG,
        )
        matching = f" matching “{search.strip()}”" if search.strip() else ""
        st.caption(f"{len(found)} models{matching}")
    else:
        st.info(f"No model matches “{search.strip()}”.", icon=":material/search_off:")

    st.subheader("Recommended models by use case")
    known = {e.id: e for e in ui.entries("")}
    st.dataframe(
        ui.recommended_rows(known), key="models_recommended", hide_index=True, width="stretch"
    )
