"""Budgets & alerts (viewer and up read; admins change budgets and rules; operators and admins
acknowledge alerts)."""

import streamlit as st

from gatehouse_core.spend.alerts import AlertConfigStore, Alerts
from gatehouse_core.spend.budget_rules import ACTIONS, SCOPES
from gatehouse_core.ui import budgets as ui
from gatehouse_core.ui import flash, forms, guard, state
from gatehouse_core.ui.errors import shown
from gatehouse_core.ui.spend import now, zone

user = guard.require("dashboards")
admin = user.can("budgets.edit")

st.title("Budgets & alerts")
st.caption(
    "Monthly USD budgets are checked before each call is sent: a `block` budget refuses a call "
    "that would pass it, an `alert` budget only alerts. Every change is in the settings audit."
)
flash.show()

with shown():
    tz = zone()
    found = ui.lines(state.engine(), ui.admitter(), now(), tz)
    st.subheader("Budgets this month")
    if not found:
        st.info("No budgets yet.", icon=":material/info:")
    else:
        st.dataframe(
            ui.rows(found),
            key="budgets_table",
            hide_index=True,
            width="stretch",
            column_config={
                "Used": st.column_config.ProgressColumn(
                    "Used", format="%.1f%%", min_value=0, max_value=100
                )
            },
        )
        for b in found:
            st.progress(
                min(b.used, 1.0),
                text=f"{b.rule.scope} · {b.name}: {b.used:.0%} of {ui.usd(b.rule.monthly_usd)}",
            )

if admin:
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Set a budget")
        keys = [ui.NEW, *(b.rule.key for b in found)]
        if st.session_state.get(ui.PICK_KEY) not in keys:
            st.session_state[ui.PICK_KEY] = ui.NEW
        st.selectbox("Budget", keys, key=ui.PICK_KEY, on_change=ui.fill_form)
        forms.leftover_errors(ui.BUDGET_FORM, set())
        with st.form("budgets_set_form"):
            st.selectbox(
                "Scope",
                SCOPES,
                key="budgets_scope",
                format_func=lambda s: f"{s} — {ui.SCOPE_HELP[s]}",
            )
            st.text_input(
                "Name (not for global)",
                key="budgets_value",
                placeholder="provider, source or actor name",
            )
            st.number_input(
                "Monthly limit (USD)", key="budgets_monthly", value=None, step=10.0, format="%.2f"
            )
            st.selectbox("Action", ACTIONS, key="budgets_action")
            st.form_submit_button(
                "Save budget", key="budgets_save", type="primary", on_click=ui.save_budget
            )
    with right:
        st.subheader("Remove a budget")
        picked = st.session_state.get(ui.PICK_KEY, ui.NEW)
        if picked == ui.NEW:
            st.caption("Pick a budget on the left to remove it.")
        else:
            st.checkbox(f"Yes, remove the budget {picked}", key="budgets_remove_confirm")
            st.button("Remove budget", key="budgets_remove", on_click=ui.remove_budget)

st.subheader("Alert rules")
with shown():
    config = AlertConfigStore(state.engine()).get()
    st.dataframe(ui.rule_rows(config), key="alerts_rules", hide_index=True, width="stretch")
    if admin:
        hourly, thresholds = st.columns(2, gap="large")
        with hourly:
            st.number_input(
                "Alert when one hour's spend reaches (USD; empty: off)",
                key="alerts_hourly",
                value=config.hourly_spend_usd,
                step=10.0,
                format="%.2f",
            )
            st.button("Save hourly rule", key="alerts_hourly_save", on_click=ui.save_hourly)
        with thresholds:
            st.text_input(
                "Budget thresholds (% of each budget)",
                key="alerts_thresholds",
                value=",".join(map(str, config.budget_thresholds)),
            )
            st.button("Save thresholds", key="alerts_thresholds_save", on_click=ui.save_thresholds)
        st.markdown("**Webhook** (a signed JSON POST per alert; Slack incoming webhooks work)")
        url_col, secret_col = st.columns(2, gap="large")
        url_col.text_input(
            "Webhook URL",
            key="alerts_webhook_url",
            placeholder="https://hooks.example.com/…",
            help="Shown afterwards by host only: the path of a webhook URL is often its secret.",
        )
        secret_col.text_input(
            "Signing secret: environment variable name",
            key="alerts_webhook_secret_env",
            value=config.secret_env or "",
            placeholder="GATEHOUSE_WEBHOOK_SECRET",
            help="The secret itself stays in the server's environment and is never stored or "
            "shown; leave empty to deliver unsigned.",
        )
        buttons = st.columns(3)
        buttons[0].button(
            "Save webhook", key="alerts_webhook_save", type="primary", on_click=ui.save_webhook
        )
        buttons[1].button(
            "Remove webhook",
            key="alerts_webhook_remove",
            on_click=ui.save_webhook,
            args=(True,),
            disabled=not config.webhook_url,
        )
        buttons[2].button(
            "Send test",
            key="alerts_webhook_test",
            on_click=ui.send_test,
            disabled=not config.webhook_url,
        )
    else:
        st.caption("Only admins change budgets, alert rules and the webhook.")

st.subheader("Recent alerts")
with shown():
    alerts = Alerts(state.engine())
    recent, deliveries = alerts.recent(50), alerts.deliveries(200)
    if not recent:
        st.info("No alert has fired.", icon=":material/info:")
    else:
        st.dataframe(
            ui.alert_rows(recent, deliveries), key="alerts_table", hide_index=True, width="stretch"
        )
        open_ids = [a.id for a in recent if a.acknowledged_at is None]
        if open_ids and user.can("alerts.ack"):
            texts = {a.id: a.text for a in recent}
            pick, buttons = st.columns([3, 1], vertical_alignment="bottom")
            pick.multiselect(
                "Acknowledge",
                open_ids,
                key="alerts_ack_pick",
                format_func=lambda i: f"#{i} {texts[i][:80]}",
            )
            buttons.button("Acknowledge", key="alerts_ack", on_click=ui.acknowledge_picked)
            buttons.button("Acknowledge all", key="alerts_ack_all", on_click=ui.acknowledge_all)
    if deliveries:
        st.markdown("**Webhook deliveries**")
        st.dataframe(
            ui.delivery_rows(deliveries[:50]),
            key="alerts_deliveries",
            hide_index=True,
            width="stretch",
        )
