"""GATEHOUSE_API_TIMEOUT bounds a request: 504 before the answer starts, an SSE error after."""

from __future__ import annotations

import json
import time

import pytest

from gatehouse_core.api import ApiConfig
from tests.api.conftest import Api
from tests.fakes.openrouter import Reply

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def api_config() -> ApiConfig:
    return ApiConfig(threads=4, timeout=1.0)


def test_a_slow_answer_is_504(api: Api) -> None:
    api.fake.enqueue(Reply(delay=3))
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "hi"})
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "timeout"


def test_a_stream_past_the_deadline_ends_with_an_error_event(api: Api) -> None:
    api.fake.enqueue(Reply(text="one two three four five six", chunk_delay=0.4))
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat/completions", json={"messages": HELLO, "stream": True})
    assert answer.status_code == 200
    events = [
        line.removeprefix("data: ")
        for line in answer.text.splitlines()
        if line.startswith("data: ")
    ]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "timeout"


def test_a_stream_timed_out_before_its_first_token_is_504_and_stops_reading(api: Api) -> None:
    api.fake.enqueue(Reply(text=" ".join(["word"] * 30), delay=2, chunk_delay=0.05))
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat/completions", json={"messages": HELLO, "stream": True})
    assert answer.status_code == 504
    rows = []
    for _ in range(300):  # bounded (30 s): the row is written once the background drain ends
        rows = api.audit_rows()
        if rows:
            break
        time.sleep(0.1)
    assert [(r.status, r.error_type) for r in rows] == [("incomplete", "cancelled")]
