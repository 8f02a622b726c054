"""Per-token limits over HTTP: model patterns (403), requests per minute (429), budget (402)."""

from __future__ import annotations

import threading

import openai
import pytest

from gatehouse_core.spend.budgets import UNKNOWN_PRICE_RESERVE_USD
from tests.api.conftest import Api
from tests.fakes.openrouter import Error, Reply

HELLO = [{"role": "user", "content": "Hello"}]


def _complete(api: Api, who: str, model: str | None = None):  # type: ignore[no-untyped-def]
    body = {"messages": HELLO, **({"model": model} if model else {})}
    with api.client(who) as client:
        return client.post("/api/v1/chat/completions", json=body)


def test_a_model_outside_the_patterns_is_403(api: Api) -> None:
    api.token("narrow", models="test/back*")
    refused = _complete(api, "narrow", "test/primary")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "model_not_allowed")
    assert "test/back*" in error["message"]
    assert api.fake.chat_requests == []  # refused before any upstream call
    assert _complete(api, "narrow", "test/backup").status_code == 200


def test_the_default_model_is_checked_when_none_is_given(api: Api) -> None:
    api.token("narrow", models="test/backup")
    assert _complete(api, "narrow").status_code == 403  # the default is test/primary


def test_the_sdk_sees_a_permission_error(api: Api) -> None:
    secret = api.token("narrow", models="openai/*")
    client = openai.OpenAI(base_url=api.v1, api_key=secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="test/primary", messages=HELLO)


def test_requests_per_minute_answer_429_with_retry_after(api: Api) -> None:
    api.token("slow", rpm=2)
    assert [_complete(api, "slow").status_code for _ in range(2)] == [200, 200]
    limited = _complete(api, "slow")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"
    assert limited.json()["error"]["code"] == "token_rate_limited"
    assert len(api.fake.chat_requests) == 2
    assert _complete(api, "operator").status_code == 200  # other tokens are not affected


def test_a_spent_monthly_budget_answers_402(api: Api) -> None:
    # The models here have no catalog price: each call reserves UNKNOWN_PRICE_RESERVE_USD.
    api.token("thrifty", monthly_usd=UNKNOWN_PRICE_RESERVE_USD + 0.1)
    api.fake.enqueue(Reply(cost=0.2), model="test/primary")
    assert _complete(api, "thrifty").status_code == 200  # $0 spent + $0.50 reserved fits
    refused = _complete(api, "thrifty")  # $0.20 spent + $0.50 would not
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "monthly budget of the API token 'thrifty'" in refused.json()["error"]["message"]
    assert len(api.fake.chat_requests) == 1
    rejected = [r for r in api.audit_rows() if r.status == "rejected"]
    assert [(r.actor, r.error_type) for r in rejected] == [("token:thrifty", "budget")]


def test_two_concurrent_calls_near_the_budget_cannot_both_pass(api: Api) -> None:
    api.token("pair", monthly_usd=UNKNOWN_PRICE_RESERVE_USD * 1.5)  # room for one reservation
    api.fake.enqueue(Reply(delay=1.0), model="test/primary")
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(_complete(api, "pair").status_code))
    thread.start()
    try:
        assert api.fake.wait_for_chat_count(1, timeout=10)  # the first call is in flight
        second = _complete(api, "pair")
    finally:
        thread.join(30)
    assert (first, second.status_code) == ([200], 402)
    assert "reserved by calls in flight" in second.json()["error"]["message"]
    assert api.fake.chat_count == 1  # the refused call never reached the upstream
    assert _complete(api, "pair").status_code == 200  # settled to its real, tiny cost
    assert api.open_reservations("pair") == 0


def test_a_failed_call_releases_its_budget_reservation(api: Api) -> None:
    api.token("unlucky", monthly_usd=UNKNOWN_PRICE_RESERVE_USD * 1.5)
    api.fake.always(Error(503))
    assert _complete(api, "unlucky").status_code == 502
    with api.client("unlucky") as client:
        streamed = client.post("/api/v1/chat/completions", json={"messages": HELLO, "stream": True})
    assert streamed.status_code == 502
    assert api.open_reservations("unlucky") == 0


def test_a_refused_call_does_not_use_up_the_rate(api: Api) -> None:
    api.token("both", rpm=1, models="test/backup")
    assert _complete(api, "both", "test/primary").status_code == 403
    assert _complete(api, "both", "test/backup").status_code == 200


def test_fallback_never_uses_a_model_outside_the_tokens_patterns(api: Api) -> None:
    api.token("primary-only", models="test/primary")
    api.token("either", models="test/*")
    api.fake.always(Error(503), model="test/primary")
    refused = _complete(api, "primary-only")
    assert refused.status_code == 502  # the backup's test/backup was not tried
    assert {r.body["model"] for r in api.fake.chat_requests} == {"test/primary"}
    answered = _complete(api, "either")
    assert answered.status_code == 200 and answered.json()["model"] == "test/backup"
