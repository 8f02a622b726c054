"""The Requests page: keyset pages, filters and links from Costs, the call detail, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine
from tests.console.spend_helpers import download, traces
from tests.spend_rows import known_dataset, request_row, store

NOW = datetime.now(UTC)


@pytest.fixture
def history() -> None:
    store(make_engine(), known_dataset(NOW))


def open_requests(app_as: Callable[[str], AppTest], role: str = "viewer", **params: str) -> AppTest:
    at = app_as(role)
    for name, value in params.items():
        at.query_params[name] = value
    at = at.switch_page("pages/requests.py").run()
    assert not at.exception, at.exception
    return at


def ids(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Request id"])


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_rows_are_newest_first_for_every_role(
    history: None, app_as: Callable[[str], AppTest], role: str
) -> None:
    at = open_requests(app_as, role)
    assert [t.value for t in at.title] == ["Requests"]
    assert ids(at)[0] == "r-today"
    assert sorted(ids(at)) == sorted(["r-today", "r-a", "r-a", "r-b", "r-c", "r-d"])


def test_older_and_newer_walk_keyset_pages(app_as: Callable[[str], AppTest]) -> None:
    start = NOW - timedelta(hours=3)
    store(
        make_engine(), [request_row(f"p{n:03d}", start + timedelta(seconds=n)) for n in range(120)]
    )
    at = open_requests(app_as)
    first = ids(at)
    assert first[0] == "p119" and len(first) == 50
    at = at.button(key="requests_older").click().run()
    second = ids(at)
    assert second[0] == "p069" and not set(first) & set(second)
    at = at.button(key="requests_older").click().run()
    assert ids(at)[-1] == "p000" and len(ids(at)) == 20
    assert at.button(key="requests_older").disabled
    at = at.button(key="requests_newer").click().run()
    assert ids(at) == second


def test_a_link_from_costs_opens_the_matching_rows(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    start, end = (NOW - timedelta(days=30)).isoformat(), (NOW + timedelta(minutes=1)).isoformat()
    at = open_requests(app_as, model="m/two", **{"from": start, "to": end})
    assert ids(at) == ["r-a"]
    assert at.selectbox(key="requests_range").value == "linked"
    at = open_requests(app_as, "operator", source="(none)", status="error")
    assert sorted(ids(at)) == ["r-a", "r-d"]


def test_filters_by_text_fields(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_requests(app_as)
    at = at.text_input(key="requests_workflow_id").set_value("wf-1").run()
    assert ids(at) == ["r-b"]
    at = at.text_input(key="requests_workflow_id").set_value("").run()
    at = at.text_input(key="requests_error_type").set_value("upstream_error").run()
    assert ids(at) == ["r-a"]
    at = at.text_input(key="requests_error_type").set_value("nothing-like-it").run()
    assert [i.value for i in at.info] == ["No requests match these filters."]


def test_call_detail_shows_the_attempt_chain_and_timeline(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_requests(app_as)
    at = at.selectbox(key="requests_detail").set_value("r-a").run()
    chain = at.dataframe[1].value
    assert list(chain["Provider"]) == ["alpha", "beta"]
    assert list(chain["Status"]) == ["error", "ok"]
    assert chain["Error"][0] == "upstream_error · overloaded"
    (bar,) = traces(at, "requests_timeline").values()
    assert bar["y"] == ["#1 alpha", "#2 beta"] and bar["x"] == [30.0, 900.0]
    # A deep link opens one call directly.
    at = open_requests(app_as, "admin", request_id="r-c")
    assert list(at.dataframe[1].value["Provider"]) == ["alpha"]


def test_filters_take_several_values_from_the_page_and_from_a_link(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_requests(app_as)
    at = at.multiselect(key="requests_status").set_value(["error"]).run()
    assert sorted(ids(at)) == ["r-a", "r-d"]
    at = at.text_input(key="requests_model").set_value("m/two, m/one").run()
    assert sorted(ids(at)) == ["r-a", "r-d"]
    at = at.multiselect(key="requests_status").set_value([]).run()
    at = at.text_input(key="requests_model").set_value("m/two").run()
    assert ids(at) == ["r-a"]


def test_a_link_with_several_values_fills_the_same_fields(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    """A Costs link with several sources and statuses (an unknown status is dropped)."""
    at = open_requests(app_as, source="(none),api", status="ok,bogus")
    assert at.multiselect(key="requests_status").value == ["ok"]
    assert sorted(ids(at)) == ["r-a", "r-b", "r-c", "r-today"]


def test_csv_export_of_the_filtered_rows(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_requests(app_as)
    at = at.text_input(key="requests_provider").set_value("alpha").run()
    at = at.button(key="requests_export").click().run()
    assert not at.exception
    rows = list(csv.DictReader(io.StringIO(download(at, "requests_csv_download").decode())))
    assert sorted(r["request_id"] for r in rows) == ["r-a", "r-b", "r-c", "r-d", "r-today"]
    assert {r["provider"] for r in rows} == {"alpha"}
    assert rows[0]["request_id"] == "r-today"


def test_a_crafted_request_id_link_is_refused_without_echo(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    crafted = "![x](http://127.0.0.1:9/exfil.png)"
    at = open_requests(app_as, request_id=crafted)
    assert not at.exception
    assert at.error[0].value == (
        "the request id in the link is not one GateHouse writes; open the call from the table"
    )
    assert "exfil" not in "".join(m.value for m in at.markdown)
