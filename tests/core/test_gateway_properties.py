"""Property test of call arguments (issue 7, "property tests for … call arguments").

Whatever a caller passes — lone surrogates, NUL, control characters, huge or odd numbers, model
ids of any shape — `Gateway.chat` returns a result or raises a `GatewayError`, never anything
else, and every attempt it made reaches the audit table (no row quarantined for its text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse_core import Gateway, GatewayError, RateLimit, Registry
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError, GatehouseError
from gatehouse_core.schema import LLMRequest, SystemSetting, utcnow
from tests.fakes.openrouter import FakeOpenRouter

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and NUL included
TEXT = st.text(ANY_CHAR, max_size=300)
OPTIONAL_TEXT = st.one_of(st.none(), TEXT)
NUMBER = st.one_of(
    st.none(), st.integers(-10, 2_000_000), st.floats(allow_nan=True, allow_infinity=True)
)


def test_any_call_arguments_end_in_a_result_or_a_gateway_error_and_are_audited(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    engine = make_engine()
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.02)
    gateway = gateway_factory("primary", audit=writer)
    outcomes: list[str] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        content=TEXT,
        model=st.one_of(st.none(), TEXT, st.just("test/primary")),
        max_tokens=NUMBER,
        temperature=NUMBER,
        workflow_id=OPTIONAL_TEXT,
        trace_id=OPTIONAL_TEXT,
        source=OPTIONAL_TEXT,
        actor=OPTIONAL_TEXT,
    )
    def one_call(**arguments: object) -> None:
        content = arguments.pop("content")
        try:
            result = gateway.chat([{"role": "user", "content": content}], **arguments)  # type: ignore[arg-type]
            request_id, attempts = result.request_id, len(result.attempts)
            assert isinstance(result.text, str)
            outcomes.append("answered")
        except GatewayError as exc:
            request_id, attempts = exc.request_id, len(exc.attempts)
            outcomes.append(type(exc).__name__)
        assert writer.flush(10)
        assert writer.stats.rejected == 0, "a row was quarantined for what the caller passed"
        if request_id is not None:
            with engine.connect() as conn:
                audited = conn.scalar(
                    select(func.count()).where(LLMRequest.request_id == request_id)
                )
            assert audited == attempts  # one row per attempt the caller was told about

    try:
        one_call()
    finally:
        gateway.close()
        engine.dispose()
    # Not vacuous: the generated calls were both answered and refused.
    assert "answered" in outcomes and len(set(outcomes)) > 1, sorted(set(outcomes))


# ---- bad input at every edge (issue 13) -------------------------------------------------------
# Example counts come from the hypothesis profile in tests/conftest.py ("ci" unless
# GATEHOUSE_HYPOTHESIS_PROFILE says otherwise).

JSON_JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
ITEM_FIELDS = st.sampled_from(["name", "type", "priority", "is_default", "enabled", "config"])
CONFIG_FIELDS = st.sampled_from(["base_url", "default_model", "rate_limit", "headers", "api_key"])


def good_document(base_url: str) -> dict[str, object]:
    return {
        "providers": [
            {
                "name": name,
                "priority": priority,
                "is_default": priority == 1,
                "enabled": True,
                "config": {"base_url": base_url, "default_model": f"test/{name}"},
            }
            for priority, name in enumerate(("primary", "edited"), start=1)
        ]
    }


def test_a_hand_edited_provider_gives_a_clear_error_naming_it_and_the_others_keep_working(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    from hypothesis import given

    gateway = gateway_factory("primary", "edited")
    registry = gateway.registry
    good = registry.document()
    # A running gateway: it has a snapshot to keep serving. (A process that starts on a
    # hand-broken row has none, and refuses every call with the same clear message.)
    gateway.chat([{"role": "user", "content": "warm up"}])

    @given(field=ITEM_FIELDS, config_field=CONFIG_FIELDS, value=JSON_JUNK, nested=st.booleans())
    def hand_edit(field: str, config_field: str, value: object, nested: bool) -> None:
        document = json.loads(json.dumps(good))
        item = document["providers"][1]
        if nested:
            item["config"][config_field] = value
        else:
            item[field] = value
        write_document(registry, document)
        try:
            try:
                views = registry.providers()
            except ConfigError as exc:  # the console's and the CLI's read: one clear message
                message = str(exc)
                assert "providers[1]" in message or "edited" in message, message
                assert "Traceback" not in message
            else:
                assert [v.config.name for v in views]  # accepted: usable as it is
            # The running gateway keeps serving the last good snapshot: the others still work.
            result = gateway.chat([{"role": "user", "content": "still fine"}], provider="primary")
            assert result.provider == "primary"
        finally:
            write_document(registry, good)

    hand_edit()


def write_document(registry: Registry, document: dict[str, object]) -> None:
    with Session(registry.engine) as s, s.begin():
        row = s.get(SystemSetting, "llm_providers")
        assert row is not None
        row.value = document
        row.updated_at = utcnow()


HEADER_VALUES = st.one_of(
    st.sampled_from(
        ["ok", "a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rb", "a\x00b", "tab\tvalue", "é"]
    ),
    TEXT,
)


def test_header_values_with_control_characters_are_refused_or_sent_exactly_never_injected(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    from hypothesis import given

    gateway = gateway_factory("primary")
    registry = gateway.registry
    seen: list[str] = []

    @given(value=HEADER_VALUES)
    def configure(value: str) -> None:
        before = registry.document()
        try:
            registry.update("primary", actor="test", headers={"X-Title": value})
        except GatehouseError as exc:
            assert registry.document() == before, "a refused change was half-saved"
            assert "X-Title" in str(exc) or "header" in str(exc)
            seen.append("refused")
            return
        sent_before = fake_openrouter.chat_count
        gateway.chat([{"role": "user", "content": "headers"}])
        (request,) = fake_openrouter.chat_requests[sent_before:]
        assert "x-injected" not in request.headers
        assert request.headers.get("x-title") == value
        seen.append("sent")

    configure()
    assert "refused" in seen and "sent" in seen, seen


@pytest.mark.parametrize(
    "field", ["requests_per_minute", "tokens_per_minute", "concurrent_requests"]
)
def test_rate_limit_values_are_refused_with_a_message_or_work(
    gateway_factory: Callable[..., Gateway], field: str
) -> None:
    from hypothesis import given

    gateway = gateway_factory("primary")
    registry = gateway.registry

    @given(
        value=st.one_of(st.integers(-(2**65), 2**65), st.floats(), st.booleans(), TEXT, st.none())
    )
    def configure(value: object) -> None:
        before = registry.document()
        try:
            limit = RateLimit(**{field: value})  # type: ignore[arg-type]
            registry.update("primary", actor="test", rate_limit=limit)
        except (GatehouseError, TypeError, ValueError) as exc:
            assert registry.document() == before, "a refused change was half-saved"
            assert field in str(exc) or "rate" in str(exc), str(exc)
            return
        gateway.chat([{"role": "user", "content": "limits"}])

    configure()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("x" * (5 * 1024 * 1024), id="5-MB-prompt"),
        pytest.param("caf\udce9 \ud800", id="lone-surrogates"),
        pytest.param("before\x00after", id="NUL"),
        pytest.param(b"\xff\xfe not utf-8 \xc3\x28", id="non-UTF-8-bytes"),
        pytest.param("\x1b[31m\r\n\x07\u202e", id="control-characters"),
    ],
)
def test_odd_prompts_end_in_a_result_or_a_clear_error_and_every_attempt_is_audited(
    gateway_factory: Callable[..., Gateway], tmp_path: Path, content: object
) -> None:
    engine = make_engine()
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.02)
    gateway = gateway_factory("primary", audit=writer)
    try:
        result = gateway.chat([{"role": "user", "content": content}])  # type: ignore[dict-item]
        request_id, attempts = result.request_id, len(result.attempts)
    except GatewayError as exc:
        assert "Traceback" not in str(exc) and str(exc)
        request_id, attempts = exc.request_id, len(exc.attempts)
    assert writer.flush(10)
    assert writer.stats.rejected == 0
    if request_id is not None:
        with engine.connect() as conn:
            audited = conn.scalar(select(func.count()).where(LLMRequest.request_id == request_id))
        assert audited == attempts
    gateway.close()
    engine.dispose()
