"""Property test of call arguments (issue 7, "property tests for … call arguments").

Whatever a caller passes — lone surrogates, NUL, control characters, huge or odd numbers, model
ids of any shape — `Gateway.chat` returns a result or raises a `GatewayError`, never anything
else, and every attempt it made reaches the audit table (no row quarantined for its text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gatehouse_core import Gateway, GatewayError
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest

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
