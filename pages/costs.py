"""Costs (viewer and up): where the money went, per group and day; what-if; forecast; drift
against OpenRouter's ledger."""

import streamlit as st

from gatehouse_core.spend import queries
from gatehouse_core.spend.drift import drift_by_day, reconciled_through
from gatehouse_core.spend.forecast import month_forecast
from gatehouse_core.spend.whatif import reprice
from gatehouse_core.ui import charts, flash, format, guard, state
from gatehouse_core.ui import costs as ui
from gatehouse_core.ui.errors import shown
from gatehouse_core.ui.spend import now, pick_filters, pick_period, zone

guard.require("dashboards")

st.title("Costs")
flash.show()

with shown():
    engine = state.engine()
    left, right = st.columns([2, 1])
    with left:
        period = pick_period("costs")
    with right:
        by = st.selectbox(
            "Group by", list(ui.GROUP_BY), format_func=ui.GROUP_BY.get, key="costs_by"
        )
    with st.expander("Filters", icon=":material/filter_alt:"):
        filters = pick_filters(engine, period, "costs")
    st.caption(
        f"{period.start.astimezone(period.zone):%Y-%m-%d %H:%M} – "
        f"{period.end.astimezone(period.zone):%Y-%m-%d %H:%M} ({period.zone.key})"
    )

    groups = queries.groups(engine, period, by, filters, percentiles=False)
    if not groups:
        st.info("No calls in this range.", icon=":material/info:")
        st.stop()
    step = ui.step_for(period)
    # The latency chart shows p50/p95 of the whole call; no chart reads time to first token.
    series = queries.series(
        engine, period, by=by, step=step, filters=filters, top=ui.TOP_IN_CHARTS, ttft=False
    )
    total = sum((g.usage for g in groups), queries.Usage())
    cols = st.columns(4)
    cols[0].metric("Cost", format.usd(total.cost_usd))
    cols[1].metric("Calls", f"{total.calls:,}")
    cols[2].metric(
        "Tokens in / out",
        f"{format.tokens(total.input_tokens)} / {format.tokens(total.output_tokens)}",
    )
    cols[3].metric("Cost per call", format.usd(total.cost_per_call))

    left, right = st.columns([2, 1])
    left.plotly_chart(charts.cost_stacked(series), key="costs_chart_cost", width="stretch")
    right.plotly_chart(
        charts.share(groups[: ui.TOP_IN_CHARTS]), key="costs_chart_share", width="stretch"
    )
    left, right = st.columns(2)
    left.plotly_chart(charts.tokens(series), key="costs_chart_tokens", width="stretch")
    right.plotly_chart(charts.latency(series), key="costs_chart_latency", width="stretch")
    st.plotly_chart(charts.rates(series), key="costs_chart_rates", width="stretch")

    st.subheader("Groups")
    rows = ui.group_rows(groups, by, period, filters)
    st.dataframe(
        rows, key="costs_table", hide_index=True, width="stretch", column_config=ui.TABLE_COLUMNS
    )
    st.download_button(
        "Download CSV",
        data=ui.rows_csv(rows),
        file_name=f"gatehouse-costs-by-{by}.csv",
        mime="text/csv",
        key="costs_csv",
        icon=":material/download:",
    )

    st.subheader("What if")
    catalog = state.catalog()
    priced = {
        e.id: e
        for e in catalog.list()
        if e.prompt_price is not None and e.completion_price is not None
    }
    model = st.selectbox(
        "Had every call in this range gone to",
        list(priced),
        index=None,
        placeholder="pick a catalog model",
        format_func=lambda m: ui.whatif_label(priced[m]),
        key="costs_whatif_model",
    )
    if model:
        ui.render_whatif(reprice(groups, catalog.entry(model), model), by)

    st.subheader("Forecast")
    f = month_forecast(engine, now(), zone(), filters)
    cols = st.columns(3)
    cols[0].metric(f"{f.month:%B} to date", format.usd(f.month_to_date_usd))
    cols[1].metric("Month-end forecast", format.usd(f.forecast_usd))
    cols[2].metric("Run-rate", f"{format.usd(f.run_rate_usd_per_day)} / day")
    st.caption(f"Forecast: month to date + {f.method}.")

    ui.render_drift(drift_by_day(engine, period), reconciled_through(engine))
