"""The fake OpenRouter speaks the wire format: driven by the real openai SDK over a socket."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import openai
import pytest

from tests.fakes.openrouter import (
    DEFAULT_KEY,
    DEFAULT_REPLY_TEXT,
    Drop,
    Error,
    Error200,
    FakeOpenRouter,
    MidStreamError,
    Reply,
    Slow,
    StreamCut,
    count_completion_tokens,
    count_prompt_tokens,
    fake_cost,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
GEN_ID = re.compile(r"^gen-\d{10}-[A-Za-z0-9]{20}$")


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenRouter) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key=DEFAULT_KEY, max_retries=0) as sdk:
        yield sdk


def chat(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, **kwargs)


def expected_cost(text: str = DEFAULT_REPLY_TEXT) -> float:
    return fake_cost(count_prompt_tokens({"messages": MESSAGES}), count_completion_tokens(text))


# --- non-streamed ---


def test_completion_has_openrouter_id_provider_and_cost(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-sonnet-4.5", messages=MESSAGES
    )
    resp = raw.parse()

    assert GEN_ID.match(resp.id)
    assert raw.headers["x-generation-id"] == resp.id
    assert resp.model == "anthropic/claude-sonnet-4.5"
    assert resp.provider == "FakeProvider"
    assert resp.choices[0].message.content == DEFAULT_REPLY_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].model_extra["native_finish_reason"] == "stop"
    assert resp.usage.prompt_tokens == count_prompt_tokens({"messages": MESSAGES})
    assert resp.usage.completion_tokens == 4
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 4
    assert resp.usage.cost == expected_cost()
    assert resp.usage.is_byok is False
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.usage.completion_tokens_details.reasoning_tokens == 0
    assert resp.usage.cost_details["upstream_inference_prompt_cost"] > 0


def test_scripted_reply_overrides_text_tokens_and_model(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(
        Reply(
            text="hi", cost=0.001, model_used="openai/gpt-4o", cached_tokens=2, reasoning_tokens=5
        )
    )

    resp = chat(client)

    assert resp.choices[0].message.content == "hi"
    assert resp.model == "openai/gpt-4o"
    assert resp.usage.cost == 0.001
    assert resp.usage.completion_tokens == 1 + 5
    assert resp.usage.prompt_tokens_details.cached_tokens == 2
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5
    assert chat(client).choices[0].message.content == DEFAULT_REPLY_TEXT  # queue consumed


def test_omit_cost_sends_usage_without_cost(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(Reply(omit_cost=True))

    usage = chat(client).usage

    assert usage.total_tokens > 0
    assert "cost" not in usage.model_extra
    assert "cost_details" not in usage.model_extra


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client: openai.OpenAI) -> None:
    resp = chat(client, max_tokens=2)

    assert resp.choices[0].message.content == "Hello from"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 2


def test_leading_blank_lines_before_json_still_parse(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(leading_newlines=8, delay=0.05))

    assert chat(client).choices[0].message.content == DEFAULT_REPLY_TEXT


# --- streamed ---


@pytest.mark.parametrize("form", ["empty_choices", "empty_delta"])
def test_stream_yields_text_then_a_usage_chunk_with_cost(
    fake: FakeOpenRouter, client: openai.OpenAI, form: str
) -> None:
    fake.enqueue(Reply(usage_chunk=form))

    chunks = list(chat(client, stream=True))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices].count("stop") == 1
    last = chunks[-1]
    assert last.usage.cost == expected_cost()
    assert GEN_ID.match(last.id) and last.model == "openai/gpt-4o-mini"
    if form == "empty_choices":
        assert last.choices == []
    else:
        assert last.choices[0].delta.content == "" and last.choices[0].finish_reason is None


def test_stream_sends_keepalive_comments_that_the_sdk_skips(fake: FakeOpenRouter) -> None:
    fake.enqueue(Reply(stream_chunks=2))
    body = {"model": "a/b", "messages": MESSAGES, "stream": True}
    auth = {"Authorization": f"Bearer {DEFAULT_KEY}"}

    raw = httpx2.post(f"{fake.base_url}/chat/completions", json=body, headers=auth).text

    assert raw.startswith(": OPENROUTER PROCESSING\n\n")
    assert raw.count(": OPENROUTER PROCESSING") == 2
    assert raw.endswith("data: [DONE]\n\n")
    # role chunk + 2 content chunks + finish chunk + usage chunk + [DONE]
    assert raw.count("data: ") == 6


def test_stream_chunk_count_is_configurable(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="one two three four five six", stream_chunks=3))

    contents = [c.choices[0].delta.content for c in chat(client, stream=True) if c.choices]

    assert contents[1:4] == ["one two", " three four", " five six"]


def test_mid_stream_error_raises_api_error_while_iterating(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(MidStreamError(after_chunks=2, code=502))
    received: list[str] = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in chat(client, stream=True):
            received.append(chunk.choices[0].delta.content or "")

    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body["code"] == 502
    assert "".join(received) == "Hello from"


def test_mid_stream_error_without_streaming_puts_error_in_the_choice(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(MidStreamError(after_chunks=1))

    choice = chat(client).choices[0]

    assert choice.finish_reason == "error"
    assert choice.message.content == "Hello"
    assert choice.model_extra["error"]["code"] == 502


def test_stream_cut_raises_during_iteration(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(StreamCut(after_chunks=1))
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in chat(client, stream=True):
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "Hello"


def test_error_with_200_status_in_a_stream_raises_api_error(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Error200())

    with pytest.raises(openai.APIError, match="Provider returned error"):
        list(chat(client, stream=True))


def test_error_before_first_chunk_is_an_http_status(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Error(503))

    with pytest.raises(openai.InternalServerError) as caught:
        chat(client, stream=True)

    assert caught.value.status_code == 503


# --- errors ---


@pytest.mark.parametrize(
    ("error", "exception"),
    [
        (Error.invalid_model(), openai.BadRequestError),
        (Error.unauthorized(), openai.AuthenticationError),
        (Error.insufficient_credits(), openai.APIStatusError),
        (Error.moderation(), openai.PermissionDeniedError),
        (Error(404), openai.NotFoundError),
        (Error(408), openai.APIStatusError),
        (Error(413), openai.APIStatusError),
        (Error(422), openai.UnprocessableEntityError),
        (Error.rate_limit(), openai.RateLimitError),
        (Error(500), openai.InternalServerError),
        (Error.provider_error(502), openai.InternalServerError),
        (Error(503), openai.InternalServerError),
        (Error(524), openai.InternalServerError),
        (Error(529), openai.InternalServerError),
    ],
    ids=lambda value: str(value.status) if isinstance(value, Error) else "",
)
def test_scripted_error_raises_the_sdk_exception_for_its_status(
    fake: FakeOpenRouter, client: openai.OpenAI, error: Error, exception: type
) -> None:
    fake.enqueue(error)

    with pytest.raises(openai.APIStatusError) as caught:
        chat(client)

    assert type(caught.value) is exception
    assert caught.value.status_code == error.status
    assert caught.value.body["code"] == error.status
    assert caught.value.body["message"] == error.payload()["error"]["message"]


def test_invalid_model_message_names_the_model(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(Error.invalid_model())

    with pytest.raises(openai.BadRequestError, match="acme/fake-1.0 is not a valid model ID"):
        chat(client)


def test_rate_limit_headers_are_readable_and_echoed_in_metadata(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Error.rate_limit(limit=8, retry_after=1, retry_after_ms=1000))

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)

    headers = caught.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "1000"
    assert headers["x-ratelimit-limit"] == "8"
    reset_ms = int(headers["x-ratelimit-reset"])
    assert 0 < reset_ms / 1000 - time.time() <= 60
    assert caught.value.body["metadata"]["headers"]["X-RateLimit-Reset"] == str(reset_ms)


def test_free_models_per_day_resets_at_utc_midnight(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Error.free_models_per_day())

    with pytest.raises(openai.RateLimitError, match="free-models-per-day") as caught:
        chat(client)

    reset_s = int(caught.value.response.headers["x-ratelimit-reset"]) // 1000
    assert reset_s % 86400 == 0


def test_error_with_200_status_gives_a_completion_without_choices(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.enqueue(Error200())

    resp = chat(client)

    assert "choices" not in resp.model_fields_set
    assert resp.model_extra["error"]["code"] == 429
    assert resp.model_extra["error"]["metadata"]["provider_name"] == "Kluster"


def test_drop_is_a_connection_error(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(Drop())

    with pytest.raises(openai.APIConnectionError):
        chat(client)
    assert chat(client).choices[0].message.content == DEFAULT_REPLY_TEXT


def test_sdk_retries_are_recorded_with_their_retry_count(fake: FakeOpenRouter) -> None:
    fake.enqueue(Error.rate_limit(retry_after_ms=10), Error(502, headers={"retry-after-ms": "10"}))
    retrying = openai.OpenAI(base_url=fake.base_url, api_key=DEFAULT_KEY, max_retries=2)

    assert chat(retrying).choices[0].message.content == DEFAULT_REPLY_TEXT
    assert fake.wait_for_chat_count(3, timeout=0)
    assert fake.chat_count == 3
    assert fake.retry_counts == [0, 1, 2]


# --- routing scripts ---


def test_per_model_script_and_fallback_models(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.always(Error(503), model="a/primary")

    resp = client.chat.completions.create(
        model="a/primary", messages=MESSAGES, extra_body={"models": ["b/backup"]}
    )
    assert resp.model == "b/backup"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="a/primary", messages=MESSAGES)


def test_validate_models_rejects_ids_not_in_the_catalog(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.validate_models = True

    assert chat(client).model == "openai/gpt-4o-mini"
    with pytest.raises(openai.BadRequestError, match="acme/fake-1.0 is not a valid model ID"):
        client.chat.completions.create(model="acme/fake-1.0", messages=MESSAGES)


def test_per_key_script(fake: FakeOpenRouter) -> None:
    fake.add_key("sk-or-v1-other")
    fake.enqueue(Error.insufficient_credits(), key="sk-or-v1-other")
    other = openai.OpenAI(base_url=fake.base_url, api_key="sk-or-v1-other", max_retries=0)
    default = openai.OpenAI(base_url=fake.base_url, api_key=DEFAULT_KEY, max_retries=0)

    assert chat(default).choices[0].message.content == DEFAULT_REPLY_TEXT
    with pytest.raises(openai.APIStatusError) as caught:
        chat(other)
    assert caught.value.status_code == 402


# --- auth, models, key, credits, generation ---


def test_unknown_key_and_missing_header_get_401(fake: FakeOpenRouter) -> None:
    stranger = openai.OpenAI(base_url=fake.base_url, api_key="sk-or-v1-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="User not found."):
        chat(stranger)

    resp = httpx2.post(f"{fake.base_url}/chat/completions", json={"messages": MESSAGES})
    assert resp.status_code == 401
    assert resp.json() == {"error": {"code": 401, "message": "No auth credentials found"}}


def test_accept_any_key(fake: FakeOpenRouter) -> None:
    fake.accept_any_key = True
    anyone = openai.OpenAI(base_url=fake.base_url, api_key="sk-or-v1-whatever", max_retries=0)

    assert chat(anyone).choices[0].message.content == DEFAULT_REPLY_TEXT


def test_models_serves_the_2025_fixture_without_auth(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    models = client.models.list().data
    assert len(models) == 335
    auto = next(m for m in models if m.id == "openrouter/auto")
    assert auto.model_extra["pricing"]["prompt"] == "-1"

    assert httpx2.get(f"{fake.base_url}/models").json().keys() == {"data"}


def test_models_serves_the_2026_shape(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.models_shape = "2026"

    page = httpx2.get(f"{fake.base_url}/models").json()
    models = client.models.list().data

    assert page["total_count"] == len(page["data"]) == len(models) == 335
    assert page["links"] == {"next": None}
    mini = next(m for m in models if m.id == "openai/gpt-4o-mini")
    assert "request" not in mini.model_extra["pricing"]  # "0" prices are omitted
    assert mini.model_extra["pricing"]["prompt"] == "0.00000015"


def test_key_endpoint_and_its_legacy_path(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.add_key("sk-or-v1-limited-0000xyz", limit=10.0, usage=2.5, is_free_tier=True)
    limited = openai.OpenAI(
        base_url=fake.base_url, api_key="sk-or-v1-limited-0000xyz", max_retries=0
    )

    data = limited.get("/key", cast_to=object)["data"]
    assert data["label"] == "sk-or-v1-lim...xyz"
    assert (data["limit"], data["usage"], data["limit_remaining"]) == (10.0, 2.5, 7.5)
    assert data["is_free_tier"] is True
    assert client.get("/auth/key", cast_to=object)["data"]["limit"] is None

    stranger = openai.OpenAI(base_url=fake.base_url, api_key="sk-or-v1-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.get("/key", cast_to=object)


def test_credits_and_management_key_requirement(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    fake.total_credits, fake.total_usage = 100.5, 25.75
    assert client.get("/credits", cast_to=object) == {
        "data": {"total_credits": 100.5, "total_usage": 25.75}
    }

    fake.credits_require_management_key = True
    with pytest.raises(openai.PermissionDeniedError):
        client.get("/credits", cast_to=object)


def test_generation_stats_for_a_served_completion(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    resp = chat(client)

    stats = client.get("/generation", cast_to=object, options={"params": {"id": resp.id}})["data"]
    assert stats["total_cost"] == resp.usage.cost
    assert stats["tokens_completion"] == resp.usage.completion_tokens
    with pytest.raises(openai.NotFoundError):
        client.get("/generation", cast_to=object, options={"params": {"id": "gen-unknown"}})


# --- recording, timeouts, concurrency, process ---


def test_requests_are_recorded_with_lowercased_headers(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    chat(
        client,
        max_tokens=50,
        extra_headers={"HTTP-Referer": "https://gatehouse.test", "X-Title": "GateHouse"},
        extra_body={"usage": {"include": True}},
    )

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/api/v1/chat/completions")
    assert request.headers["http-referer"] == "https://gatehouse.test"
    assert request.headers["x-title"] == "GateHouse"
    assert request.api_key == DEFAULT_KEY
    assert request.retry_count == 0
    assert request.body["usage"] == {"include": True}
    assert request.body["max_tokens"] == 50
    assert request.body["model"] == "openai/gpt-4o-mini"


def test_slow_reply_times_out_and_stop_returns_quickly() -> None:
    fake = FakeOpenRouter().start()
    fake.enqueue(Slow(30))
    impatient = openai.OpenAI(base_url=fake.base_url, api_key=DEFAULT_KEY, max_retries=0)

    with pytest.raises(openai.APITimeoutError):
        chat(impatient, timeout=0.2)
    started = time.monotonic()
    fake.stop()

    assert time.monotonic() - started < 1.0


def test_32_concurrent_clients_are_served(fake: FakeOpenRouter, client: openai.OpenAI) -> None:
    fake.enqueue(*[Reply(delay=0.2)] * 32)
    started = time.monotonic()

    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(lambda _: chat(client).choices[0].message.content, range(32)))

    assert replies == [DEFAULT_REPLY_TEXT] * 32
    assert time.monotonic() - started < 2.0  # in parallel, not 32 x 0.2 s


def test_runs_as_a_process_and_writes_its_port(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openrouter", "--port", "0", "--port-file", port_file],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text()}/api/v1"
        sdk = openai.OpenAI(base_url=base_url, api_key=DEFAULT_KEY, max_retries=0)
        assert chat(sdk).choices[0].message.content == DEFAULT_REPLY_TEXT
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


# --- the ledger: analytics and activity (§9) ---

MGMT = "sk-or-v1-management-key-00005e7c"


def analytics(fake: FakeOpenRouter, body: dict, key: str | None = MGMT) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx2.post(f"{fake.base_url}/analytics/query", json=body, headers=headers)


def test_analytics_query_groups_the_ledger_like_openrouter(fake: FakeOpenRouter) -> None:
    fake.add_management_key(MGMT)
    fake.bill("g1", "m/a", 0.25, datetime(2026, 11, 28, 10, tzinfo=UTC))
    fake.bill("g2", "m/a", 0.5, datetime(2026, 11, 29, 10, tzinfo=UTC))
    fake.bill("g3", "m/b", 1.0, datetime(2026, 11, 29, 11, tzinfo=UTC))
    body = {
        "metrics": ["total_usage", "request_count"],
        "dimensions": ["model"],
        "granularity": "day",
        "time_range": {"start": "2026-11-28T00:00:00Z", "end": "2026-11-30T00:00:00Z"},
    }
    response = analytics(fake, body)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["metadata"] == {"query_time_ms": 1, "row_count": 3, "truncated": False}
    rows = sorted(data["data"], key=lambda r: (r["date__day"], r["model"]))
    assert rows == [
        {"model": "m/a", "date__day": "2026-11-28", "request_count": "1", "total_usage": 0.25},
        {"model": "m/a", "date__day": "2026-11-29", "request_count": "1", "total_usage": 0.5},
        {"model": "m/b", "date__day": "2026-11-29", "request_count": "1", "total_usage": 1.0},
    ]
    per_generation = analytics(
        fake, body | {"metrics": ["total_usage"], "dimensions": ["generation_id"], "limit": 2}
    ).json()["data"]
    assert len(per_generation["data"]) == 2 and per_generation["metadata"]["truncated"]


def test_analytics_needs_a_management_key_and_valid_bodies(fake: FakeOpenRouter) -> None:
    fake.add_management_key(MGMT)
    body = {"metrics": ["total_usage"]}
    assert analytics(fake, body, key=None).status_code == 401
    assert analytics(fake, body, key="sk-or-v1-unknown-key-000000").status_code == 401
    refused = analytics(fake, body, key=DEFAULT_KEY)  # an inference key
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only management keys can perform this operation"
    too_many = analytics(fake, body | {"dimensions": ["model", "generation_id", "model"]})
    assert too_many.status_code == 400 and "<=2" in too_many.json()["error"]["message"]
    long_range = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    assert (
        analytics(
            fake, body | {"dimensions": ["generation_id"], "time_range": long_range}
        ).status_code
        == 400
    )
    fake.fail_analytics(Error(408))
    assert analytics(fake, body).status_code == 408
    assert analytics(fake, body).status_code == 200


def test_completions_are_billed_and_activity_refuses_today(
    fake: FakeOpenRouter, client: openai.OpenAI
) -> None:
    chat(client)
    [billed] = fake.ledger
    assert billed.model == "openai/gpt-4o-mini" and billed.cost == pytest.approx(expected_cost())
    fake.add_management_key(MGMT)
    today = datetime.now(UTC).date().isoformat()
    answer = httpx2.get(
        f"{fake.base_url}/activity",
        params={"date": today},
        headers={"Authorization": f"Bearer {MGMT}"},
    )
    assert answer.status_code == 400
    assert "last 30 (completed) UTC days" in answer.json()["error"]["message"]
