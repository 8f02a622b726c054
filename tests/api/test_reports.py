"""`/api/v1/requests` (keyset cursor) and `/api/v1/usage`: the CLI's JSON shapes over HTTP."""

from __future__ import annotations

import pytest

from gatehouse_core.reports import USAGE_KEYS
from tests.api.conftest import Api
from tests.fakes.openrouter import Error

REQUEST_KEYS = {
    "id", "request_id", "attempt", "created_at", "provider", "model", "model_used",
    "generation_id", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
    "cost_usd", "cost_source", "latency_ms", "ttft_ms", "status", "http_status", "error_type",
    "error_message", "workflow_id", "trace_id", "source", "actor",
}  # fmt: skip


def _calls(api: Api, n: int) -> None:
    with api.client("operator") as client:
        for _ in range(n):
            assert client.post("/api/v1/chat", json={"message": "hi"}).status_code == 200
    api.audit_rows()


def test_requests_pages_with_a_keyset_cursor_without_gaps_or_repeats(api: Api) -> None:
    _page_through(api)


def test_the_keyset_cursor_works_on_postgres(postgres_url: str, api: Api) -> None:
    assert api.engine.dialect.name == "postgresql"
    _page_through(api)


def _page_through(api: Api) -> None:
    _calls(api, 5)
    seen: list[int] = []
    cursor = None
    with api.client("viewer") as client:
        for _ in range(10):  # bounded: 5 rows in pages of 2 need 3 pages
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/requests", params=params).json()
            seen += [row["id"] for row in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == 5 and len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)  # newest first


def test_request_rows_have_the_cli_shape(api: Api) -> None:
    _calls(api, 1)
    with api.client("viewer") as client:
        [row] = client.get("/api/v1/requests").json()["data"]
    assert set(row) >= REQUEST_KEYS  # every llm_requests column, as `requests --json`
    assert row["actor"] == "token:operator" and row["source"] == "api"
    assert row["created_at"].endswith("+00:00")


def test_requests_filter_by_status(api: Api) -> None:
    api.fake.enqueue(Error(400))
    with api.client("operator") as client:
        client.post("/api/v1/chat", json={"message": "hi"})
    _calls(api, 1)
    with api.client("viewer") as client:
        rows = client.get("/api/v1/requests", params={"status": "error"}).json()["data"]
    assert [r["http_status"] for r in rows] == [400]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "soon"}, None), ({"limit": 0}, "query.limit"), ({"status": "odd"}, "query.status")],
)
def test_bad_filters_are_refused_clearly(api: Api, params: dict, field: str | None) -> None:
    with api.client("viewer") as client:
        answer = client.get("/api/v1/requests", params=params)
    assert answer.status_code in (400, 422)
    error = answer.json()["error"]
    if field:
        assert field in error["fields"]
    else:
        assert "not a time span" in error["message"]


def test_a_forged_cursor_is_400(api: Api) -> None:
    with api.client("viewer") as client:
        answer = client.get("/api/v1/requests", params={"cursor": "!!not-ours"})
    assert answer.status_code == 400
    assert "next_cursor" in answer.json()["error"]["message"]


def test_usage_groups_have_the_cli_shape(api: Api) -> None:
    _calls(api, 2)
    with api.client("viewer") as client:
        data = client.get("/api/v1/usage", params={"by": "provider"}).json()["data"]
    assert [tuple(g) for g in data] == [USAGE_KEYS]
    assert (data[0]["group"], data[0]["requests"], data[0]["attempts"]) == ("primary", 2, 2)
