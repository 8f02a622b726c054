"""The Budgets & alerts page and the alert banner: every role reads, admins change budgets and
rules (audited, nothing half-saved), admins and operators acknowledge alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine, transaction
from gatehouse_core.schema import Alert, SettingsAudit
from gatehouse_core.spend.alerts import AlertConfigStore, Alerts
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
from gatehouse_core.ui.session import SESSION_KEY
from tests.console.conftest import APP, texts
from tests.spend_rows import request_row, store

BUDGETS_PAGE = "pages/budgets.py"
NOW = datetime.now(UTC)
# Halfway between the start of the month and now: this month whatever the day.
MONTH = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
EARLIER = MONTH + (NOW - MONTH) / 2


@pytest.fixture
def engine():  # type: ignore[no-untyped-def]
    return make_engine()


@pytest.fixture
def spend(engine) -> None:  # type: ignore[no-untyped-def]
    """$3.00 this month: alpha $2.00 (two calls), beta $1.00."""
    store(
        engine,
        [
            request_row("r1", EARLIER, cost_usd=1.5),
            request_row("r2", EARLIER, cost_usd=0.5),
            request_row("r3", EARLIER, provider="beta", model="m/two", cost_usd=1.0),
        ],
    )


def open_page(app_as: Callable[[str], AppTest], role: str) -> AppTest:
    """The page script itself, run by a user of `role` who signed in through the form."""
    signed_in = app_as(role)
    at = AppTest.from_file(APP.parent / BUDGETS_PAGE, default_timeout=30)
    at.session_state[SESSION_KEY] = signed_in.session_state[SESSION_KEY]
    at = at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Budgets & alerts"]
    return at


# A column only each table has (AppTest does not expose a dataframe's key).
COLUMN_OF = {
    "budgets_table": "Monthly limit",
    "alerts_rules": "Rule",
    "alerts_table": "Webhook",
    "alerts_deliveries": "Try",
}


def table(at: AppTest, key: str) -> list[dict[str, object]]:
    for frame in at.dataframe:
        if COLUMN_OF[key] in frame.value.columns:
            return frame.value.to_dict("records")
    raise KeyError(key)


def audit_actions(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """The budget and alert changes in settings_audit (sign-ins and users left out)."""
    query = select(SettingsAudit.action).order_by(SettingsAudit.id)
    with transaction(engine) as s:
        return [a for a in s.scalars(query) if a.startswith(("budget.", "alerts."))]


def fire(engine, text: str = "GateHouse spent $60 in one hour") -> int:  # type: ignore[no-untyped-def]
    start = NOW.replace(minute=0, second=0, microsecond=0)
    alert = Alerts(engine).fire(
        "hourly_spend", "hourly_spend", 50.0, 60.0, start, start + timedelta(hours=1), text
    )
    assert alert is not None
    return alert.id


def demote(at: AppTest, role: str) -> None:
    """The same browser session, its user now holding `role` (e.g. an admin demoted while the
    page was open): the page's callbacks must check the role again."""
    signed = dict(at.session_state[SESSION_KEY])
    at.session_state[SESSION_KEY] = {**signed, "role": role}


# ---- reading ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_sees_budgets_with_spend_forecast_and_progress(
    spend: None, engine, app_as: Callable[[str], AppTest], role: str
) -> None:
    budgets = BudgetStore(engine)
    budgets.set(make_rule("global", None, 10.0), actor="seed")
    budgets.set(make_rule("provider", "alpha", 4.0, "alert"), actor="seed")
    at = open_page(app_as, role)
    rows = table(at, "budgets_table")
    assert [(r["Scope"], r["Name"]) for r in rows] == [
        ("global", "all calls"),
        ("provider", "alpha"),
    ]
    assert rows[0]["Monthly limit"] == "$10.00" and rows[0]["Spent this month"] == "$3.00"
    assert rows[0]["Used"] == 30.0 and rows[0]["Open reservations"] == "$0"
    assert rows[1]["Action"] == "alert" and rows[1]["Spent this month"] == "$2.00"
    assert rows[1]["Used"] == 50.0
    assert all(r["Forecast"].startswith("$") for r in rows)
    bars = at.get("progress")
    assert [b.proto.value for b in bars] == [30, 50]
    assert ("budgets_save" in texts(at)) is (role == "admin")


def test_viewer_sees_rules_and_alerts_but_no_edit_or_acknowledge(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    AlertConfigStore(engine).set_hourly_spend(50.0, actor="seed")
    fire(engine)
    at = open_page(app_as, "viewer")
    rules = {r["Rule"]: r["Setting"] for r in table(at, "alerts_rules")}
    assert rules["Hourly spend"] == "$50.00 in one hour"
    assert rules["Budget thresholds"] == "50%, 80%, 100%"
    (alert,) = table(at, "alerts_table")
    assert alert["Webhook"] == "not sent" and alert["Acknowledged"] == ""
    keys = {getattr(b, "key", None) for b in at.button}
    assert not keys & {"budgets_save", "alerts_ack", "alerts_hourly_save", "alerts_webhook_save"}
    assert "Only admins change budgets" in texts(at)


def test_no_budgets_no_alerts_is_explained(app_as: Callable[[str], AppTest]) -> None:
    at = open_page(app_as, "viewer")
    assert [i.value for i in at.info] == ["No budgets yet.", "No alert has fired."]
    assert not at.error


# ---- changing budgets -----------------------------------------------------------------------


def test_admin_sets_edits_and_removes_a_budget_audited(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    at = open_page(app_as, "admin")
    at.selectbox(key="budgets_scope").set_value("provider")
    at.text_input(key="budgets_value").set_value("alpha")
    at.number_input(key="budgets_monthly").set_value(25.0)
    at = at.button(key="budgets_save").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        "Set the provider budget 'alpha': $25.00 a month, action block."
    ]
    assert BudgetStore(engine).list_rules() == [make_rule("provider", "alpha", 25.0)]
    # Picking it fills the form; changing the action replaces it.
    assert at.selectbox(key="budgets_pick").value == "provider:alpha"
    at.selectbox(key="budgets_action").set_value("alert")
    at = at.button(key="budgets_save").click().run()
    assert BudgetStore(engine).list_rules() == [make_rule("provider", "alpha", 25.0, "alert")]
    at = at.checkbox(key="budgets_remove_confirm").check().run()
    at = at.button(key="budgets_remove").click().run()
    assert [s.value for s in at.success] == ["Removed the provider budget 'alpha'."]
    assert BudgetStore(engine).list_rules() == []
    assert audit_actions(engine) == ["budget.set", "budget.set", "budget.remove"]


def test_remove_asks_for_confirmation(engine, app_as: Callable[[str], AppTest]) -> None:
    BudgetStore(engine).set(make_rule("global", None, 10.0), actor="seed")
    at = open_page(app_as, "admin")
    at = at.selectbox(key="budgets_pick").set_value("global").run()
    at = at.button(key="budgets_remove").click().run()
    assert "Tick" in at.warning[0].value
    assert len(BudgetStore(engine).list_rules()) == 1


@pytest.mark.parametrize(
    ("scope", "name", "amount", "message"),
    [
        ("provider", "", 10.0, "a provider budget needs the provider's name"),
        ("global", "", None, "enter the monthly budget in USD"),
        ("global", "", -5.0, "must be a number of USD above 0"),
        ("actor", "x" * 201, 10.0, "at most 200 are allowed"),
    ],
)
def test_bad_budget_input_is_explained_and_nothing_saved(
    engine,
    app_as: Callable[[str], AppTest],
    scope: str,
    name: str,
    amount: float | None,
    message: str,
) -> None:
    at = open_page(app_as, "admin")
    at.selectbox(key="budgets_scope").set_value(scope)
    at.text_input(key="budgets_value").set_value(name)
    at.number_input(key="budgets_monthly").set_value(amount)
    at = at.button(key="budgets_save").click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert BudgetStore(engine).list_rules() == []
    assert audit_actions(engine) == []


def test_a_viewer_is_refused_even_with_the_form_in_front_of_them(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    at = open_page(app_as, "admin")
    at.number_input(key="budgets_monthly").set_value(10.0)
    demote(at, "viewer")
    at = at.button(key="budgets_save").click().run()
    assert "Your role (viewer) may not change budgets" in at.error[0].value
    assert BudgetStore(engine).list_rules() == []
    assert audit_actions(engine) == []


def test_viewer_cannot_change_alert_rules_or_acknowledge(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    alert_id = fire(engine)
    at = open_page(app_as, "admin")
    admin = dict(at.session_state[SESSION_KEY])
    at.number_input(key="alerts_hourly").set_value(5.0)
    demote(at, "viewer")
    at = at.button(key="alerts_hourly_save").click().run()
    assert "Your role (viewer) may not change alert rules" in at.error[0].value
    at.session_state[SESSION_KEY] = admin
    at = at.run()
    at.multiselect(key="alerts_ack_pick").set_value([alert_id])
    demote(at, "viewer")
    at = at.button(key="alerts_ack").click().run()
    assert "may not acknowledge cost alerts" in at.error[0].value
    assert AlertConfigStore(engine).get().hourly_spend_usd is None
    assert Alerts(engine).unacknowledged() != []


# ---- alert rules and the webhook --------------------------------------------------------


def test_admin_sets_alert_rules_and_webhook_audited_secret_never_shown(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    at = open_page(app_as, "admin")
    at.number_input(key="alerts_hourly").set_value(50.0)
    at = at.button(key="alerts_hourly_save").click().run()
    assert [s.value for s in at.success] == ["Alert when an hour's spend reaches $50.00."]
    at.text_input(key="alerts_thresholds").set_value("90, 75")
    at = at.button(key="alerts_thresholds_save").click().run()
    assert [s.value for s in at.success] == ["Budgets alert at 75%, 90% of their monthly amount."]
    url = "https://hooks.example.com/services/T000/SECRETPATH"
    at.text_input(key="alerts_webhook_url").set_value(url)
    at.text_input(key="alerts_webhook_secret_env").set_value("GATEHOUSE_WEBHOOK_SECRET")
    at = at.button(key="alerts_webhook_save").click().run()
    assert not at.exception
    assert "signed with $GATEHOUSE_WEBHOOK_SECRET" in at.success[0].value
    config = AlertConfigStore(engine).get()
    assert config.webhook_url == url and config.hourly_spend_usd == 50.0
    assert config.budget_thresholds == (75, 90)
    assert "SECRETPATH" not in texts(at)  # the URL's path is never shown again
    assert audit_actions(engine) == [
        "alerts.hourly_spend",
        "alerts.budget_thresholds",
        "alerts.webhook",
    ]


@pytest.mark.parametrize(
    ("key", "value", "button", "message"),
    [
        ("alerts_thresholds", "50,abc", "alerts_thresholds_save", "must be whole percents"),
        ("alerts_thresholds", "0", "alerts_thresholds_save", "must be whole percents"),
        ("alerts_webhook_url", "ftp://x", "alerts_webhook_save", "http"),
        ("alerts_webhook_secret_env", "my secret!", "alerts_webhook_save", "not an environment"),
    ],
)
def test_bad_rule_input_is_explained_and_nothing_saved(
    engine, app_as: Callable[[str], AppTest], key: str, value: str, button: str, message: str
) -> None:
    at = open_page(app_as, "admin")
    if key == "alerts_webhook_secret_env":
        at.text_input(key="alerts_webhook_url").set_value("https://hooks.example.com/x")
    at.text_input(key=key).set_value(value)
    at = at.button(key=button).click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert audit_actions(engine) == []
    assert AlertConfigStore(engine).get() == AlertConfigStore(engine).get().__class__()


# ---- acknowledging and the banner ---------------------------------------------------------


def banner_texts(at: AppTest) -> list[str]:
    return [e.value for e in at.error if "unacknowledged cost alert" in e.value]


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_banner_on_every_page_until_acknowledged_for_everyone(
    engine, app_as: Callable[[str], AppTest], role: str
) -> None:
    fire(engine, "GateHouse spent $60.00 between 10:00 and 11:00 UTC")
    at = app_as(role)  # the whole app: the banner is part of every page's frame
    (shown,) = banner_texts(at)
    assert "1 unacknowledged cost alert" in shown and "$60.00 between 10:00" in shown
    assert any("Budgets & alerts" in str(p.proto) for p in at.get("page_link"))
    at.switch_page("pages/costs.py").run()
    assert banner_texts(at), "the banner shows on the Costs page too"
    at = at.button(key="banner_ack").click().run()
    assert not at.exception
    assert banner_texts(at) == []
    assert Alerts(engine).unacknowledged() == []
    with transaction(engine) as s:
        assert s.scalar(select(Alert.acknowledged_by)) == role
    # Everyone: a viewer signing in now sees no banner either.
    assert banner_texts(app_as("viewer")) == []


def test_viewer_sees_the_banner_without_an_acknowledge_button(
    engine, app_as: Callable[[str], AppTest]
) -> None:
    fire(engine)
    at = app_as("viewer")
    assert banner_texts(at)
    assert "banner_ack" not in {getattr(b, "key", None) for b in at.button}


def test_no_banner_without_alerts(app_as: Callable[[str], AppTest]) -> None:
    assert banner_texts(app_as("viewer")) == []


def test_acknowledge_on_the_page_and_all(engine, app_as: Callable[[str], AppTest]) -> None:
    first = fire(engine, "first")
    start = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    Alerts(engine).fire("hourly_spend", "hourly_spend", 50, 70, start, NOW, "second")
    at = open_page(app_as, "operator")
    at.multiselect(key="alerts_ack_pick").set_value([first])
    at = at.button(key="alerts_ack").click().run()
    assert [s.value for s in at.success] == ["Acknowledged 1 alert(s)."]
    assert [a.text for a in Alerts(engine).unacknowledged()] == ["second"]
    at = at.button(key="alerts_ack_all").click().run()
    assert Alerts(engine).unacknowledged() == []
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 2


def test_delivery_status_per_alert(engine, app_as: Callable[[str], AppTest]) -> None:
    # A webhook nobody listens on: each try fails and is recorded.
    AlertConfigStore(engine).set_webhook("http://127.0.0.1:9/hook", None, actor="seed")
    alerts = Alerts(engine, sleep=lambda _s: None, backoff=(0.0,))
    start = NOW.replace(minute=0, second=0, microsecond=0)
    alerts.fire("hourly_spend", "hourly_spend", 50, 60, start, NOW, "spent")
    at = open_page(app_as, "admin")
    (row,) = table(at, "alerts_table")
    assert row["Webhook"].startswith("failed after 2 try(s)")
    deliveries = table(at, "alerts_deliveries")
    assert [d["Status"] for d in deliveries] == ["failed", "failed"]
    assert all(d["To"].startswith("http://127.0.0.1:9") for d in deliveries)
