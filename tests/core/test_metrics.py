"""Metric sinks: EMF lines parsed as the CloudWatch spec says; OTel spans in memory."""

from __future__ import annotations

import io
import json
import sys

import pytest

from gatehouse_core.metrics import (
    AttemptRecord,
    CallRecord,
    EmfSink,
    MultiSink,
    NullSink,
    OtelSink,
    sink_from_env,
)
from gatehouse_core.settings import SettingError

RECORD = CallRecord(
    provider="backup",
    model="openai/gpt-4o-mini",
    model_used="openai/gpt-4o-mini-2024-07-18",
    input_tokens=120,
    output_tokens=30,
    cost_usd=0.00042,
    latency_ms=850.5,
    status="ok",
    attempts=(
        AttemptRecord("primary", None, "error", latency_ms=300.0),
        AttemptRecord("backup", "openai/gpt-4o-mini-2024-07-18", "ok", 120, 30, 0.00042, 500.0),
    ),
    request_id="req-1",
    ended_at=1_764_000_000.25,
)


def test_emf_line_follows_the_embedded_metric_format_spec() -> None:
    stream = io.StringIO()
    EmfSink(stream).emit(RECORD)
    [line] = stream.getvalue().splitlines()
    doc = json.loads(line)
    meta = doc["_aws"]
    assert meta["Timestamp"] == 1_764_000_000_250  # epoch milliseconds, an integer
    [directive] = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == "GateHouse/LLM"
    assert directive["Dimensions"] == [["Provider", "Model"]]
    assert directive["Metrics"] == [
        {"Name": "TokensUsed", "Unit": "Count"},
        {"Name": "EstimatedCost", "Unit": "None"},
        {"Name": "LatencyMs", "Unit": "Milliseconds"},
    ]
    # The spec: every dimension and metric named in a directive is a top-level member, dimension
    # values are strings, metric values numbers.
    for name in directive["Dimensions"][0]:
        assert isinstance(doc[name], str)
    for metric in directive["Metrics"]:
        assert isinstance(doc[metric["Name"]], int | float)
    assert (doc["Provider"], doc["Model"]) == ("backup", "openai/gpt-4o-mini")
    assert (doc["TokensUsed"], doc["EstimatedCost"], doc["LatencyMs"]) == (150, 0.00042, 850.5)
    assert len(directive["Dimensions"][0]) <= 30 and len(directive["Metrics"]) <= 100


def test_emf_goes_to_stderr_so_stdout_stays_parseable(capsys: pytest.CaptureFixture[str]) -> None:
    sink_from_env({"GATEHOUSE_METRICS": "emf"}).emit(RECORD)
    out, err = capsys.readouterr()
    assert out == "" and json.loads(err)["_aws"]["CloudWatchMetrics"]


def test_an_unknown_cost_is_reported_as_zero() -> None:
    stream = io.StringIO()
    EmfSink(stream).emit(CallRecord("p", "m", None, 0, 0, None, 1.0, "error"))
    assert json.loads(stream.getvalue())["EstimatedCost"] == 0.0


def test_unset_means_no_sink_and_an_unknown_name_is_a_clear_error() -> None:
    assert isinstance(sink_from_env({}), NullSink)
    assert isinstance(sink_from_env({"GATEHOUSE_METRICS": "emf,otel"}), MultiSink)
    with pytest.raises(SettingError, match="names statsd; use emf, otel"):
        sink_from_env({"GATEHOUSE_METRICS": "emf,statsd"})


def test_otel_is_nothing_when_the_api_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what an uninstalled package does
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    assert isinstance(sink_from_env({"GATEHOUSE_METRICS": "otel"}), NullSink)


def test_otel_spans_per_call_and_attempt_carry_gen_ai_attributes() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OtelSink(provider.get_tracer("test")).emit(RECORD)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"chat openai/gpt-4o-mini", "attempt 1 primary", "attempt 2 backup"}
    call = spans["chat openai/gpt-4o-mini"]
    assert {k: call.attributes[k] for k in call.attributes if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openrouter",
        "gen_ai.request.model": "openai/gpt-4o-mini",
        "gen_ai.response.model": "openai/gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    assert call.attributes["gatehouse.provider"] == "backup"
    assert call.attributes["gatehouse.cost_usd"] == 0.00042
    assert call.end_time - call.start_time == 850_500_000
    failed, answered = spans["attempt 1 primary"], spans["attempt 2 backup"]
    for child in (failed, answered):
        assert child.parent.span_id == call.context.span_id
    assert failed.status.status_code is StatusCode.ERROR
    assert answered.attributes["gen_ai.usage.output_tokens"] == 30
    assert failed.end_time <= answered.start_time
