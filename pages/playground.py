"""Playground (operator, admin): test-chat through the gateway, or compare models side by side."""

import streamlit as st

from gatehouse_core.ui import flash, guard, state, untrusted
from gatehouse_core.ui import models as catalog_ui
from gatehouse_core.ui import playground as pg
from gatehouse_core.ui.errors import shown

user = guard.require("playground")

st.title("Playground")
st.caption(
    "Test prompts through the gateway, with the same fallback, limits and cost accounting as "
    "production. Every call is recorded with source `playground` and your username."
)
flash.show()


def settings_panel(providers: list[str], labels: dict[str, str]) -> pg.CallSettings:
    with st.expander("Settings", expanded=False, icon=":material/tune:"):
        left, right = st.columns(2)
        model = left.selectbox(
            "Model",
            [pg.AUTO, *labels],
            format_func=lambda m: labels.get(m, m) if m else "Provider's default model",
            key="pg_model",
            accept_new_options=True,
            help="Type to search by id or name; prices are USD per million tokens.",
        )
        provider = right.selectbox(
            "Provider",
            [pg.AUTO, *providers],
            format_func=lambda p: p or "Automatic (default first, then fallback)",
            key="pg_provider",
        )
        system = st.text_area("System prompt", key="pg_system", height=80)
        left, right = st.columns(2)
        # Empty = not sent, so each model keeps its own default (e.g. 0.3 for Mistral 7B).
        temperature = left.number_input(
            "Temperature",
            min_value=0.0,
            max_value=2.0,
            value=None,
            step=0.1,
            key="pg_temperature",
            placeholder="model default",
        )
        max_tokens = right.number_input(
            "Max tokens",
            min_value=1,
            max_value=200_000,
            value=None,
            step=256,
            key="pg_max_tokens",
            placeholder="provider default",
        )
    return pg.CallSettings(
        model=model or None,
        provider=provider or None,
        system=system or "",
        temperature=temperature,
        max_tokens=int(max_tokens) if max_tokens else None,
        actor=user.username,
    )


def chat(settings: pg.CallSettings, endpoint: object) -> None:
    turns = pg.history()
    totals = st.empty()  # filled last, so it counts the answer of this run too
    for turn in turns:
        pg.render_turn(turn)
    prompt = st.chat_input("Ask something…", key="pg_input") or st.session_state.pop(
        pg.RETRY_KEY, None
    )
    if prompt:
        turns.append({"role": "user", "content": prompt})
        pg.render_turn(turns[-1])
        with st.chat_message("assistant"):
            pg.stream_answer(state.gateway(), settings, turns)
    if turns:
        totals.caption(pg.totals_line(turns))
    if pg.can_retry(turns):
        st.button(
            "Retry last turn", key="pg_retry", icon=":material/replay:", on_click=pg.retry_last
        )
    pg.render_code(settings.snippet_call(turns, endpoint))


def compare(settings: pg.CallSettings, labels: dict[str, str]) -> None:
    models = st.multiselect(
        f"Models to compare (up to {pg.MAX_COMPARE})",
        list(labels),
        format_func=lambda m: labels.get(m, m),
        key="pg_compare_models",
        max_selections=pg.MAX_COMPARE,
        accept_new_options=True,
    )
    prompt = st.text_area("Prompt", key="pg_compare_prompt", height=100)
    run = st.button(
        "Run comparison",
        key="pg_compare_run",
        type="primary",
        disabled=len(models) < 2 or not (prompt or "").strip(),
        help="Pick two or three models and write a prompt.",
    )
    if run:
        with st.spinner(f"Asking {len(models)} models…"):
            st.session_state[pg.COMPARE_KEY] = pg.compare(state.gateway(), settings, prompt, models)
    done = st.session_state.get(pg.COMPARE_KEY)
    if not done:
        return
    st.dataframe(pg.compare_rows(done["outcomes"]), key="pg_compare_table", hide_index=True)
    for column, outcome in zip(st.columns(len(done["outcomes"])), done["outcomes"], strict=True):
        with column:
            st.markdown(f"**{untrusted.text(outcome['model'])}**")
            if outcome["error"]:
                pg.show_error(outcome["error"])
            else:
                st.markdown(untrusted.markdown(outcome["result"]["text"]))
                pg.render_details(outcome["result"])


with shown():
    views = state.registry().providers()
    if not views:
        st.warning("No provider is configured, so the gateway has nowhere to send prompts.")
        if user.can("providers"):
            st.page_link("pages/providers.py", label="Add a provider", icon=":material/add:")
        st.stop()
    labels = {e.id: catalog_ui.picker_label(e) for e in catalog_ui.entries("")}
    mode = st.segmented_control(
        "Mode", ["Chat", "Compare"], default="Chat", key="pg_mode", required=True
    )
    settings = settings_panel([v.name for v in views if v.config.enabled], labels)
    st.button(
        "Reset conversation", key="pg_reset", icon=":material/restart_alt:", on_click=pg.reset
    )
    if mode == "Compare":
        compare(settings, labels)
    else:
        chosen = [v for v in views if v.name == settings.provider]
        enabled = [v for v in views if v.config.enabled]
        default = [v for v in enabled if v.config.is_default]
        chat(settings, (chosen or default or enabled or views)[0].config)
