"""The Playground: streamed chat against the fake OpenRouter, details under each answer,
settings sent upstream, failures as messages, the attempt chain, compare mode, the audit."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine, transaction
from gatehouse_core.schema import LLMRequest
from gatehouse_core.ui import format
from gatehouse_core.ui import playground as pg
from tests.console.conftest import texts
from tests.fakes.openrouter import DEFAULT_KEY, DEFAULT_REPLY_TEXT, Error, FakeOpenRouter, Reply

EXFIL = "![x](http://127.0.0.1:9/exfil.png?d=secret)"
UNESCAPED_BRACKET = re.compile(r"(?<!\\)[\[\]]")


@pytest.fixture
def playground(app_as: Callable[[str], AppTest], fake_provider: Callable[..., str]) -> AppTest:
    fake_provider("fake")
    at = app_as("operator").switch_page("pages/playground.py").run()
    assert [t.value for t in at.title] == ["Playground"]
    return at


def ask(at: AppTest, prompt: str) -> AppTest:
    return at.chat_input(key="pg_input").set_value(prompt).run()


def answers(at: AppTest) -> list:
    return [m for m in at.chat_message if m.name == "assistant"]


def test_streamed_answer_shows_provider_tokens_cost_and_timing(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    at = ask(playground, "Hello there, how are you?")
    assert not at.exception
    [answer] = answers(at)
    assert answer.markdown[0].value == DEFAULT_REPLY_TEXT
    details = answer.caption[0].value
    assert "**fake** · `openai/gpt-4o-mini`" in details
    assert "6 in / 4 out tokens" in details  # the fake: 25 chars // 4, and 4 words
    assert "$0.000014 (reported by the provider)" in details
    assert "first token after" in details
    assert fake_openrouter.chat_requests[-1].body["stream"] is True


def test_conversation_is_kept_and_reset_clears_it(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    at = ask(playground, "first question")
    at = ask(at, "second question")
    sent = fake_openrouter.chat_requests[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "first question"),
        ("assistant", DEFAULT_REPLY_TEXT),
        ("user", "second question"),
    ]
    assert len(at.chat_message) == 4
    at = at.button(key="pg_reset").click().run()
    assert len(at.chat_message) == 0


def test_temperature_is_left_to_the_model_unless_set(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    ask(playground, "Hello")
    assert "temperature" not in fake_openrouter.chat_requests[-1].body


def test_settings_reach_the_upstream(playground: AppTest, fake_openrouter: FakeOpenRouter) -> None:
    at = playground
    at.selectbox(key="pg_model").set_value("anthropic/claude-sonnet-4")
    at.selectbox(key="pg_provider").set_value("fake")
    at.text_area(key="pg_system").set_value("Answer in French.")
    at.number_input(key="pg_temperature").set_value(0.2)
    at.number_input(key="pg_max_tokens").set_value(300)
    at = ask(at, "Bonjour")
    body = fake_openrouter.chat_requests[-1].body
    assert body["model"] == "anthropic/claude-sonnet-4"
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert body["temperature"] == pytest.approx(0.2)
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 300
    assert "`anthropic/claude-sonnet-4`" in answers(at)[0].caption[0].value


def test_failing_call_shows_the_gateways_message(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error.insufficient_credits())
    at = ask(playground, "Hello")
    assert not at.exception
    message = answers(at)[0].error[0].value
    assert "add credits" in message
    # The failed turn is not sent again as context.
    fake_openrouter.always(Reply(text="fine now"))
    ask(at, "Again")
    assert [m["content"] for m in fake_openrouter.chat_requests[-1].body["messages"]] == [
        "Hello",
        "Again",
    ]


def test_fallback_shows_the_attempt_chain(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_provider("primary", default_model="test/primary")
    fake_provider("backup", default_model="test/backup", priority=2)
    fake_openrouter.always(Error.unauthorized(), model="test/primary")
    at = ask(app_as("operator").switch_page("pages/playground.py").run(), "Hello")
    assert not at.exception
    [answer] = answers(at)
    assert "**backup** · `test/backup`" in answer.caption[0].value
    assert answer.expander[0].label == "2 attempts (1 fallback)"
    chain = [m.value for m in answer.expander[0].markdown]
    assert chain[0].startswith("1. primary · `test/primary` → error HTTP 401")
    assert chain[1].startswith("2. backup · `test/backup` → ok")


def test_playground_calls_are_audited_with_source_and_user(playground: AppTest) -> None:
    ask(playground, "Audit me")
    st.cache_resource.clear()  # releasing the gateway flushes its audit writer
    with transaction(make_engine()) as s:
        rows = s.scalars(select(LLMRequest)).all()
    assert [(r.source, r.actor, r.status, r.provider) for r in rows] == [
        ("playground", "operator", "ok", "fake")
    ]


def test_compare_mode_runs_models_side_by_side(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    at = playground
    at.segmented_control(key="pg_mode").set_value("Compare").run()
    at.multiselect(key="pg_compare_models").set_value(
        ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4"]
    )
    at.text_area(key="pg_compare_prompt").set_value("Which is better?").run()
    at = at.button(key="pg_compare_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Requested model"]) == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4"]
    assert list(table["Status"]) == ["ok", "ok"]
    assert all(cost.startswith("$") for cost in table["Cost"])
    assert sorted(r.body["model"] for r in fake_openrouter.chat_requests) == [
        "anthropic/claude-sonnet-4",
        "openai/gpt-4o-mini",
    ]
    captions = [c.value for c in at.main.caption]
    assert sum("reported by the provider" in c for c in captions) == 2


def test_compare_needs_two_models(playground: AppTest) -> None:
    at = playground
    at.segmented_control(key="pg_mode").set_value("Compare").run()
    at.multiselect(key="pg_compare_models").set_value(["openai/gpt-4o-mini"])
    at.text_area(key="pg_compare_prompt").set_value("Hi").run()
    assert at.button(key="pg_compare_run").disabled


def test_without_providers_admin_is_sent_to_add_one(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("admin").switch_page("pages/playground.py").run()
    assert "No provider is configured" in at.warning[0].value
    assert at.get("page_link")[0].proto.label == "Add a provider"
    with pytest.raises(KeyError):
        at.chat_input(key="pg_input")


def test_provider_health_appears_after_a_call(
    app_as: Callable[[str], AppTest], fake_provider: Callable[..., str]
) -> None:
    fake_provider("fake")
    at = ask(app_as("admin").switch_page("pages/playground.py").run(), "Hello")
    at = at.switch_page("pages/providers.py").run()
    assert at.dataframe[0].value.iloc[0]["Health"] == "ok just now"


def test_one_failed_attempt_is_not_called_a_retry(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error.insufficient_credits())
    [answer] = answers(ask(playground, "Hello"))
    assert answer.expander[0].label == "1 attempt"


def test_attempt_labels_count_retries_and_fallbacks() -> None:
    a, b = {"provider": "a"}, {"provider": "b"}
    assert pg.attempts_label([a, a, b]) == "3 attempts (1 retry, 1 fallback)"
    assert pg.attempts_label([a, a, a]) == "3 attempts (2 retries)"


def test_attempt_line_shows_the_attempts_own_first_token_time() -> None:
    attempt = {"provider": "a", "model": "m/x", "status": "ok", "latency_ms": 900.0}
    assert "first token" not in pg.attempt_line(attempt)  # results from before the field
    assert pg.attempt_line({**attempt, "ttft_ms": 120.0}).endswith(
        "(900 ms, first token after 120 ms)"
    )


def test_model_output_never_renders_a_remote_image_or_link(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Reply(text=f"Sure. {EXFIL} and [click](http://127.0.0.1:9/x)"))
    at = ask(playground, "Hello")
    shown = answers(at)[0].markdown[0].value
    assert not UNESCAPED_BRACKET.search(shown)  # no image or link can start
    assert shown.startswith("Sure. !\\[x\\](http")  # the syntax is shown as text instead
    again = ask(at, "again")  # and redrawn from the history just the same
    assert answers(again)[0].markdown[0].value == shown


def test_upstream_error_text_is_shown_as_text(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error(status=400, message=f"bad request {EXFIL}"))
    at = ask(playground, "Hello")
    message = answers(at)[0].error[0].value
    assert "bad request" in message and not UNESCAPED_BRACKET.search(message)


def test_conversation_total_adds_up_the_answers(playground: AppTest) -> None:
    at = ask(ask(playground, "first"), "second")
    [total] = [c.value for c in at.main.caption if c.value.startswith("This conversation")]
    assert total.startswith("This conversation: 2 answers · ")
    metas = [t["meta"] for t in at.session_state["pg_history"] if t["role"] == "assistant"]
    tokens_in = sum(m["input_tokens"] for m in metas)
    cost = sum(m["cost_usd"] for m in metas)
    assert f" · {tokens_in} in / 8 out tokens · " in total  # the fake: 4 words per answer
    assert total.endswith(format.usd(cost)) and cost > max(m["cost_usd"] for m in metas)


def test_retry_asks_the_last_prompt_again(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error.insufficient_credits())
    at = ask(playground, "Hello")
    fake_openrouter.always(Reply(text="fine now"))
    at = at.button(key="pg_retry").click().run()
    assert not at.exception
    assert [(m.name, m.markdown[0].value if m.markdown else "") for m in at.chat_message] == [
        ("user", "Hello"),
        ("assistant", "fine now"),
    ]
    assert [m["content"] for m in fake_openrouter.chat_requests[-1].body["messages"]] == ["Hello"]


def test_view_as_code_shows_the_call_without_the_key(
    playground: AppTest, fake_openrouter: FakeOpenRouter
) -> None:
    at = ask(playground, "Hello snippets")
    python, sdk, shell = (c.value for c in at.code)
    assert "gateway.chat(" in python and "'Hello snippets'" in python
    assert "'assistant'" not in python  # the call that was made, not one ending in its answer
    assert f"base_url={fake_openrouter.base_url!r}" in sdk
    assert "Authorization: Bearer $OPENROUTER_API_KEY" in shell
    assert DEFAULT_KEY not in texts(at)


class _StreamCutByRerun:
    """A gateway whose stream yields one delta, then meets a rerun, the way Streamlit ends a
    run mid-answer when Stop is pressed (in the page the rerun comes from the next write)."""

    def __init__(self, turns: list[dict]) -> None:
        self.closed = False
        self.result = None
        self.turns = turns

    def stream(self, messages: object, **kwargs: object) -> _StreamCutByRerun:
        return self

    def __iter__(self) -> _StreamCutByRerun:
        return self

    def __next__(self) -> str:
        if self.closed:
            raise StopIteration
        if getattr(self, "_sent", False):
            self.history_when_cut = [dict(t) for t in self.turns]
            raise RerunException(None)
        self._sent = True
        return "Partial ans"

    def close(self) -> None:
        self.closed = True


def test_a_stream_ended_by_a_rerun_is_closed_and_kept_as_stopped() -> None:
    turns = [{"role": "user", "content": "Hello"}]
    gateway = _StreamCutByRerun(turns)
    settings = pg.CallSettings(None, None, "", None, None, "operator")
    with pytest.raises(RerunException):
        pg.stream_answer(gateway, settings, turns)
    assert gateway.closed
    assert turns[-1]["content"] == "Partial ans" and turns[-1]["stopped"]
    # Already there while it streamed: with fast reruns the next run may read the history
    # before this one has unwound.
    assert gateway.history_when_cut[-1]["content"] == "Partial ans"
    assert gateway.history_when_cut[-1]["stopped"]
    # A stopped answer is not sent back as context: the model never finished it.
    assert settings.messages([*turns, {"role": "user", "content": "Next"}]) == [
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": "Next"},
    ]


def test_all_failed_names_each_reason_once_in_the_attempt_chain(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_provider("primary", default_model="test/primary")
    fake_provider("backup", default_model="test/backup", priority=2)
    fake_openrouter.always(Error.unauthorized())
    [answer] = answers(ask(app_as("operator").switch_page("pages/playground.py").run(), "Hello"))
    [headline] = [re.sub(r"\\(.)", r"\1", e.value) for e in answer.error]  # as displayed
    assert headline.startswith("All providers failed. Each attempt and its reason is listed")
    assert "primary" not in headline and "backup" not in headline
    chain = [m.value for m in answer.expander[0].markdown]
    assert answer.expander[0].label == "2 attempts (1 fallback)"
    assert all(": " in line.rsplit(")", 1)[-1] for line in chain)  # each with its reason
