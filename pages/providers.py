"""Providers (admin): the upstreams, their keys, fallback order, health and a connection test."""

import contextlib
from collections.abc import Callable

import streamlit as st

from gatehouse_core.registry import ProviderView, undecryptable_message
from gatehouse_core.ui import flash, forms, guard, state
from gatehouse_core.ui import providers as ui
from gatehouse_core.ui.errors import console_wording, message_for, shown
from gatehouse_core.ui.sidebar import gateway_health
from gatehouse_core.verify import verify_provider

ADD, EDIT = "provider_add", "provider_edit"
SELECT, PENDING_DELETE, LOADED, VERIFY = (
    "provider_select",
    "provider_delete_pending",
    "provider_edit_loaded",
    "provider_verify",
)
user = guard.require("providers")
registry = state.registry()
ss = st.session_state


# ---- actions: callbacks run before the rerun that shows their result -------------------


@guard.action("providers")  # a click from a tab opened before a demotion
def add_provider() -> None:
    changes, api_key, errors = ui.read_fields(ADD)
    name = (ss.get(ui.key(ADD, "name")) or "").strip()
    ss[ui.key(ADD, "api_key")] = ""  # never sent back to the browser
    try:
        if not errors:
            registry.add(ui.config_from(name, changes), actor=user.username, api_key=api_key)
    except Exception as exc:
        errors = forms.validation_errors(exc)
    if errors:
        forms.set_errors(ADD, errors)
        return
    forms.clear_errors(ADD)
    ui.reset_add_state(ADD, registry.next_priority())
    ss[SELECT] = name
    flash.push("success", f"Added provider {name}" + (" with its API key." if api_key else "."))
    warn_unknown_model(changes["default_model"])


@guard.action("providers")
def save_provider(name: str) -> None:
    before = ui.default_name(registry.providers())
    changes, api_key, errors = ui.read_fields(EDIT)
    ss[ui.key(EDIT, "api_key")] = ""
    try:
        if not errors:
            registry.update(name, actor=user.username, api_key=api_key, **changes)
    except Exception as exc:
        errors = forms.validation_errors(exc)
    if errors:
        forms.set_errors(EDIT, errors)
        return
    forms.clear_errors(EDIT)
    ss.pop(LOADED, None)  # reload the form from what was stored
    saved = f"Saved {name}" + (" and replaced its API key." if api_key else ".")
    flash.push("success", with_default_change(saved, before))
    warn_unknown_model(changes["default_model"])


def with_default_change(done: str, before: str | None) -> str:
    """`done`, plus which provider is the default now if the change moved it."""
    views = registry.providers()
    note = ui.default_change(before, ui.default_name(views)) if views else ""
    return f"{done} {note}" if note and note not in done else done


def warn_unknown_model(model: str) -> None:
    """Saved, but the model id may be a typo: say so (the catalog decides)."""
    with contextlib.suppress(Exception):  # a catalog hiccup must not hide the success
        warning = state.catalog().check_model(model)
        if warning:
            flash.push("warning", console_wording(warning))


@guard.action("providers")
def run_action(done: str, action: Callable[..., object], *args: object, **kwargs: object) -> None:
    before = ui.default_name(registry.providers())
    try:
        action(*args, actor=user.username, **kwargs)
    except Exception as exc:
        flash.push_error(exc)
        return
    ss.pop(PENDING_DELETE, None)
    ss.pop(LOADED, None)
    flash.push("success", with_default_change(done, before))


@guard.action("providers")
def ask_delete(name: str) -> None:
    ss[PENDING_DELETE] = name


def cancel_delete() -> None:
    ss.pop(PENDING_DELETE, None)


def test_connection(name: str) -> None:
    with st.spinner(f"Testing {name}…"):
        try:
            ss[VERIFY] = verify_provider(registry, name, timeout=10.0).to_json()
        except Exception as exc:
            ss[VERIFY] = {
                "provider": name,
                "ok": False,
                "reachable": False,
                "error": message_for(exc),
            }


# ---- page ------------------------------------------------------------------------------


def manage(view: ProviderView) -> None:
    config, name = view.config, view.name
    actions = st.container(horizontal=True, key="provider_actions")
    if actions.button("Test connection", key="provider_test", icon=":material/network_check:"):
        test_connection(name)
    if config.read_only:
        st.info(
            "This provider is built from the CODEGEN_* environment variables and is read-only "
            "here. Add a provider below; it then replaces `env`.",
            icon=":material/lock:",
        )
    else:
        actions.button(
            "Disable" if config.enabled else "Enable",
            key="provider_toggle",
            on_click=run_action,
            args=(f"{'Disabled' if config.enabled else 'Enabled'} {name}.", registry.set_enabled),
            kwargs={"name": name, "enabled": not config.enabled},
        )
        actions.button(
            "Make default",
            key="provider_make_default",
            disabled=config.is_default or not config.enabled,
            on_click=run_action,
            args=(f"{name} is now the default provider.", registry.update, name),
            kwargs={"is_default": True},
        )
        actions.button(
            "Delete…",
            key="provider_delete",
            icon=":material/delete:",
            on_click=ask_delete,
            args=(name,),
        )
        if ss.get(PENDING_DELETE) == name:
            st.warning(f"Delete {name} and its stored API key? This cannot be undone.")
            confirm = st.container(horizontal=True, key="provider_delete_confirmation")
            confirm.button(
                f"Yes, delete {name}",
                key="provider_delete_confirm",
                type="primary",
                on_click=run_action,
                args=(f"Deleted {name} and its key.", registry.remove, name),
            )
            confirm.button("Cancel", key="provider_delete_cancel", on_click=cancel_delete)
    report = ss.get(VERIFY)
    if report and report.get("provider") == name:
        ui.render_verify(report)
    if not config.read_only:
        edit_form(view)


def edit_form(view: ProviderView) -> None:
    if ss.get(LOADED) != view.name:
        ui.load_edit_state(EDIT, view.config)
        forms.clear_errors(EDIT)
        ss[LOADED] = view.name
    with st.expander(f"Edit {view.name}", expanded=bool(forms.errors(EDIT))):
        st.caption(ui.manage_caption(view))
        forms.leftover_errors(EDIT, set(ui.FIELDS))
        with st.form("provider_edit_form"):
            ui.render_fields(EDIT, EDIT, adding=False)
            st.form_submit_button(
                "Save changes",
                key="provider_edit_submit",
                type="primary",
                on_click=save_provider,
                args=(view.name,),
            )


def add_form(views: list[ProviderView]) -> None:
    ui.init_add_state(ADD, registry.next_priority())
    with st.expander("New provider", expanded=not views or bool(forms.errors(ADD))):
        forms.leftover_errors(ADD, set(ui.FIELDS))
        with st.form("provider_add_form"):
            ui.render_fields(ADD, ADD, adding=True)
            st.form_submit_button(
                "Add provider", key="provider_add_submit", type="primary", on_click=add_provider
            )


st.title("Providers")
st.caption(
    "The upstreams the gateway calls, in fallback order. API keys are stored encrypted and "
    "shown only masked. Changes reach running workers within seconds, without a restart."
)
flash.show()

with shown():
    views = registry.providers()
    locked = [v.name for v in views if v.key_status == "undecryptable"]
    if locked:
        st.warning(console_wording(undecryptable_message(locked)), icon=":material/key_off:")
    if views:
        st.dataframe(
            ui.table_rows(
                views,
                gateway_health(),
                state.catalog().unknown_default_models([v.config for v in views]),
            ),
            key="providers_table",
            hide_index=True,
            width="stretch",
            column_config=ui.TABLE_COLUMNS,
        )
        st.subheader("Manage")
        names = [v.name for v in views]
        if ss.get(SELECT) not in names:
            ss[SELECT] = names[0]
        selected = st.selectbox("Provider", names, key=SELECT)
        manage(next(v for v in views if v.name == selected))
    else:
        st.info("No provider yet. Add one below; the first provider becomes the default.")

    st.subheader("Add a provider")
    add_form(views)
    with st.expander("Stored configuration (llm_providers JSON, read-only)"):
        st.json(registry.document(), expanded=True)
    with st.expander("Recent changes"):
        st.dataframe(
            [
                {"When": e.created_at, "Who": e.actor, "Action": e.action, "Target": e.target}
                for e in registry.history(limit=20)
            ],
            key="providers_history",
            hide_index=True,
            width="stretch",
        )
