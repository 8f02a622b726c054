"""The official openai SDK pointed at /api/v1: GateHouse's fallback, limits and audit apply."""

from __future__ import annotations

import json

import openai
import pytest

from tests.api.conftest import Api
from tests.fakes.openrouter import DEFAULT_KEY, DEFAULT_REPLY_TEXT, Error, Reply, fake_cost

HELLO = [{"role": "user", "content": "Hello"}]


def sdk(api: Api, who: str = "operator") -> openai.OpenAI:
    return openai.OpenAI(base_url=api.v1, api_key=api.secrets[who], max_retries=0, timeout=30)


def test_non_stream_answer_in_openai_shape_with_usage_and_cost(api: Api) -> None:
    raw = sdk(api).chat.completions.with_raw_response.create(model="test/primary", messages=HELLO)
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == DEFAULT_REPLY_TEXT
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "test/primary"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    expected = fake_cost(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert reply.usage.model_extra["cost"] == pytest.approx(expected)
    assert raw.headers["x-gatehouse-provider"] == "primary"
    assert raw.headers["x-gatehouse-request-id"] == reply.model_extra["gatehouse"]["request_id"]


def test_model_is_the_model_actually_used(api: Api) -> None:
    api.fake.enqueue(Reply(model_used="test/routed"), model="test/primary")
    reply = sdk(api).chat.completions.create(model="test/primary", messages=HELLO)
    assert reply.model == "test/routed"


def test_stream_delivers_the_text_and_ends_with_a_usage_chunk_with_cost(api: Api) -> None:
    chunks = list(
        sdk(api).chat.completions.create(model="test/primary", messages=HELLO, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.model_extra["cost"] == pytest.approx(
        fake_cost(last.usage.prompt_tokens, last.usage.completion_tokens)
    )
    assert last.model == "test/primary"
    assert last.model_extra["gatehouse"]["provider"] == "primary"


def test_fallback_when_the_first_provider_fails(api: Api) -> None:
    api.fake.always(Error(503), model="test/primary")
    raw = sdk(api).chat.completions.with_raw_response.create(model="test/primary", messages=HELLO)
    reply = raw.parse()
    assert reply.model == "test/backup"  # the fallback provider answers with its default model
    assert raw.headers["x-gatehouse-provider"] == "backup"
    assert reply.model_extra["gatehouse"]["attempts"] == 5  # 1 + 3 retries on primary, then backup


def test_stream_falls_back_before_the_first_token(api: Api) -> None:
    api.fake.always(Error(503), model="test/primary")
    chunks = list(
        sdk(api).chat.completions.create(model="test/primary", messages=HELLO, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        DEFAULT_REPLY_TEXT
    )
    assert chunks[-1].model == "test/backup"


def test_when_every_provider_fails_the_answer_is_502_with_the_chain(api: Api) -> None:
    api.fake.always(Error(503))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(api).chat.completions.create(model="test/primary", messages=HELLO)
    error = caught.value
    assert error.status_code == 502
    body = error.response.json()["error"]
    assert body["code"] == "all_providers_failed" and body["type"] == "api_error"
    assert "All providers failed" in body["message"] and "primary" in body["message"]
    assert {a["provider"] for a in body["attempts"]} == {"primary", "backup"}
    assert DEFAULT_KEY not in error.response.text
    assert "Traceback" not in error.response.text


def test_stream_failure_before_the_first_token_is_an_http_error(api: Api) -> None:
    api.fake.always(Error(503))
    with pytest.raises(openai.APIStatusError) as caught:
        list(sdk(api).chat.completions.create(model="test/primary", messages=HELLO, stream=True))
    assert caught.value.status_code == 502


def test_tools_and_openrouter_fields_are_passed_to_the_upstream(api: Api) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    sdk(api).chat.completions.create(
        model="test/primary",
        messages=HELLO,
        tools=tools,
        tool_choice="auto",
        seed=7,
        stop=["END"],
        response_format={"type": "json_object"},
        stream_options={"include_usage": True},
        extra_body={"provider": {"order": ["Fake"]}, "transforms": []},
    )
    sent = api.fake.chat_requests[-1].body
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert (sent["seed"], sent["stop"]) == (7, ["END"])
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["provider"] == {"order": ["Fake"]} and sent["transforms"] == []
    assert "stream_options" not in sent


def test_bad_request_is_400_in_openai_shape(api: Api) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(api).chat.completions.create(model="not a model id", messages=HELLO)
    assert caught.value.response.json()["error"]["type"] == "invalid_request_error"


def test_missing_messages_is_422_naming_the_field(api: Api) -> None:
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat/completions", json={"model": "test/primary"})
    assert answer.status_code == 422
    assert "messages" in answer.json()["error"]["fields"]


def test_audit_rows_carry_the_token_and_the_request_headers(api: Api) -> None:
    sdk(api).chat.completions.create(
        model="test/primary",
        messages=HELLO,
        extra_headers={"X-GateHouse-Workflow-Id": "wf-9", "X-GateHouse-Trace-Id": "tr-9"},
    )
    rows = api.audit_rows()
    assert [(r.actor, r.source, r.workflow_id, r.trace_id) for r in rows] == [
        ("token:operator", "api", "wf-9", "tr-9")
    ]


def test_models_are_listed_in_openai_shape(api: Api) -> None:
    models = sdk(api, "viewer").models.list()
    ids = [m.id for m in models.data]
    assert ids and ids == sorted(ids)
    first = models.data[0]
    assert first.object == "model" and first.owned_by == first.id.split("/")[0]


def test_no_key_in_any_answer(api: Api) -> None:
    with api.client("admin") as client:
        answers = [
            client.get("/api/v1/settings/providers"),
            client.get("/api/v1/settings/providers/primary"),
            client.post("/api/v1/chat", json={"message": "hi"}),
            client.post("/api/v1/chat/completions", json={"messages": HELLO, "stream": True}),
            client.get("/api/v1/requests"),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert DEFAULT_KEY not in answer.text
    assert json.loads(answers[1].text)["api_key"] == "sk-or-…a1b2"


# ---- faithful passthrough: the upstream's whole answer -------------------------------------

LOOKUP = {"name": "lookup", "arguments": '{"city": "Oslo"}'}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_a_tool_call_round_trip(api: Api) -> None:
    client = sdk(api)
    api.fake.enqueue(Reply(text="", tool_calls=(LOOKUP,)), model="test/primary")
    first = client.chat.completions.create(model="test/primary", messages=HELLO, tools=TOOLS)
    (call,) = first.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup", LOOKUP["arguments"])
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None

    answer = client.chat.completions.create(
        model="test/primary",
        tools=TOOLS,
        messages=[
            *HELLO,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 3}'},
        ],
    )

    assert answer.choices[0].message.content == DEFAULT_REPLY_TEXT
    sent = api.fake.chat_requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 3}'}


def test_n_2_returns_both_choices(api: Api) -> None:
    reply = sdk(api).chat.completions.create(model="test/primary", messages=HELLO, n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content == DEFAULT_REPLY_TEXT
    assert reply.choices[1].message.content == f"{DEFAULT_REPLY_TEXT} (choice 1)"
    assert api.fake.chat_requests[-1].body["n"] == 2


def test_logprobs_are_passed_back(api: Api) -> None:
    reply = sdk(api).chat.completions.create(
        model="test/primary", messages=HELLO, logprobs=True, top_logprobs=2
    )
    tokens = [t.token for t in reply.choices[0].logprobs.content]
    assert "".join(tokens) == DEFAULT_REPLY_TEXT
    assert api.fake.chat_requests[-1].body["top_logprobs"] == 2


def test_a_refusal_is_passed_back(api: Api) -> None:
    api.fake.enqueue(Reply(refusal="I cannot help with that."), model="test/primary")
    reply = sdk(api).chat.completions.create(model="test/primary", messages=HELLO)
    assert reply.choices[0].message.refusal == "I cannot help with that."
    assert reply.choices[0].message.content is None


def test_the_upstream_id_and_openrouter_extras_are_kept(api: Api) -> None:
    reply = sdk(api).chat.completions.create(model="test/primary", messages=HELLO)
    assert reply.id.startswith("gen-")
    assert reply.model_extra["provider"] == "FakeProvider"  # OpenRouter's own field
    assert reply.usage.model_extra["is_byok"] is False


def test_a_missing_upstream_cost_is_filled_with_the_estimate(api: Api) -> None:
    api.fake.enqueue(Reply(omit_cost=True), model="test/primary")
    reply = sdk(api).chat.completions.create(model="test/primary", messages=HELLO)
    extra = reply.model_extra["gatehouse"]
    assert "cost" in reply.usage.model_extra
    assert extra["cost_source"] in ("estimated", "unknown")


def test_streamed_tool_call_deltas_are_reassembled_by_the_sdk(api: Api) -> None:
    api.fake.enqueue(Reply(text="", tool_calls=(LOOKUP,)), model="test/primary")
    with sdk(api).chat.completions.stream(
        model="test/primary", messages=HELLO, tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup", LOOKUP["arguments"])
    assert call.id.startswith("call_")
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_stream_passes_every_choice_index_and_logprobs(api: Api) -> None:
    chunks = list(
        sdk(api).chat.completions.create(
            model="test/primary", messages=HELLO, stream=True, n=2, logprobs=True
        )
    )
    texts = {0: "", 1: ""}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: DEFAULT_REPLY_TEXT, 1: f"{DEFAULT_REPLY_TEXT} (choice 1)"}
    assert any(ch.logprobs and ch.logprobs.content for c in chunks for ch in c.choices)
    assert all(c.id == chunks[0].id for c in chunks) and chunks[0].id.startswith("gen-")
    assert chunks[-1].usage.model_extra["cost"] > 0


def test_stream_request_fields_reach_the_upstream(api: Api) -> None:
    list(
        sdk(api).chat.completions.create(
            model="test/primary",
            messages=HELLO,
            stream=True,
            seed=3,
            stop=["END"],
            response_format={"type": "json_object"},
        )
    )
    sent = api.fake.chat_requests[-1].body
    assert (sent["seed"], sent["stop"], sent["response_format"]) == (
        3,
        ["END"],
        {"type": "json_object"},
    )
    assert sent["stream"] is True


# ---- headers on every answer -----------------------------------------------------------------


def test_a_stream_answer_carries_the_request_id_and_provider_headers(api: Api) -> None:
    api.fake.always(Error(503), model="test/primary")
    raw = sdk(api).chat.completions.with_raw_response.create(
        model="test/primary", messages=HELLO, stream=True
    )
    chunks = list(raw.parse())
    assert raw.headers["x-gatehouse-provider"] == "backup"
    request_id = raw.headers["x-gatehouse-request-id"]
    assert chunks[-1].model_extra["gatehouse"]["request_id"] == request_id


def test_an_error_answer_carries_the_request_id_header(api: Api) -> None:
    api.fake.always(Error(503))
    with api.client("operator") as client:
        answer = client.post(
            "/api/v1/chat/completions",
            json={"model": "test/primary", "messages": HELLO, "stream": True},
        )
    assert answer.status_code == 502
    assert answer.headers["x-gatehouse-request-id"]
    assert answer.headers["x-gatehouse-provider"] == "backup"
