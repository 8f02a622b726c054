"""Models (viewer and up): the catalog with prices, recommended models, and (admin) refresh."""

import streamlit as st

from gatehouse_core.catalog import RefreshResult
from gatehouse_core.ui import flash, guard, state, untrusted
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
            else:  # the error can quote the upstream: shown as text
                status.write(f":red[✗] {result.provider}: {untrusted.text(result.error or '')}")

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


def filter_panel(everything: list) -> ui.Filters:
    with st.expander("Filters", icon=":material/filter_list:"):
        left, middle, right = st.columns(3)
        free_only = left.checkbox("Free models only", key="models_free")
        authors = left.multiselect(
            "Author", sorted({ui.author(e) for e in everything}), key="models_authors"
        )
        sources = middle.multiselect(
            "Listed by provider", sorted({e.source for e in everything}), key="models_sources"
        )
        min_context = middle.number_input(
            "Context at least (tokens)",
            value=None,
            step=1000,
            key="models_min_context",
            placeholder="any",
        )
        max_input = right.number_input(
            "Input price at most ($/1M)",
            value=None,
            step=0.5,
            key="models_max_input",
            placeholder="any",
        )
        max_output = right.number_input(
            "Output price at most ($/1M)",
            value=None,
            step=0.5,
            key="models_max_output",
            placeholder="any",
        )
    return ui.Filters(
        free_only=free_only,
        authors=authors,
        sources=sources,
        min_context=min_context,
        max_input_per_million=max_input,
        max_output_per_million=max_output,
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
    everything = ui.entries("")
    filters = filter_panel(everything)
    found = ui.filtered(ui.entries(search), filters)
    if found:
        st.dataframe(
            [ui.row(e) for e in found],
            key="models_table",
            hide_index=True,
            width="stretch",
            height=ui.table_height(len(found)),
            column_config=ui.COLUMN_CONFIG,
        )
        matching = f" matching “{search.strip()}”" if search.strip() else ""
        st.caption(f"{len(found)} models{matching} · click a column header to sort")
    elif search.strip():
        st.info(f"No model matches “{search.strip()}”.", icon=":material/search_off:")
    else:
        st.info("No model passes these filters.", icon=":material/search_off:")

    st.subheader("Recommended models by use case")
    known = {e.id: e for e in everything}
    st.dataframe(
        ui.recommended_rows(known), key="models_recommended", hide_index=True, width="stretch"
    )
