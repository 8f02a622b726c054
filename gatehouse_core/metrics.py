"""Metric sinks fed one `CallRecord` per call: CloudWatch EMF lines and OpenTelemetry spans.

`GATEHOUSE_METRICS` picks them (`emf`, `otel`, both as `emf,otel`, or unset for none); the
gateway builds the record once, from the same figures as its log line and audit rows, and hands
it to `sink.emit(record)`. A sink never raises into the call it measures.

- `emf`: one JSON line per call on stderr in CloudWatch's Embedded Metric Format (namespace
  `GateHouse/LLM`; `TokensUsed`, `EstimatedCost`, `LatencyMs` by `Provider` and `Model`), so
  the CloudWatch agent or Lambda turns log lines into metrics with no SDK on the hot path.
- `otel`: one span per call and a child span per attempt carrying the OpenTelemetry GenAI
  attributes, through whatever tracer provider the application configured; when the
  `opentelemetry` API is not installed (`pip install gatehouse[otel]`) it is a no-op.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from . import settings
from .settings import SettingError

log = logging.getLogger("gatehouse.metrics")

NAMESPACE = "GateHouse/LLM"
DIMENSIONS = ("Provider", "Model")
EMF_METRICS = (("TokensUsed", "Count"), ("EstimatedCost", "None"), ("LatencyMs", "Milliseconds"))
GEN_AI_SYSTEM = "openrouter"
SINKS = ("emf", "otel")


@dataclass(frozen=True)
class AttemptRecord:
    """One upstream attempt of a call."""

    provider: str
    model_used: str | None
    status: str  # results.ATTEMPT_STATUSES
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class CallRecord:
    """One call as the caller saw it: the provider that answered (or was tried last), the model
    requested and the one that answered, tokens and cost over all attempts, wall latency."""

    provider: str
    model: str
    model_used: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_ms: float
    status: str
    attempts: Sequence[AttemptRecord] = ()
    request_id: str = ""
    ended_at: float | None = None  # epoch seconds; None: when emitted

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class MetricsSink(Protocol):
    def emit(self, record: CallRecord) -> None: ...


class NullSink:
    """GATEHOUSE_METRICS unset: nothing to do."""

    def emit(self, record: CallRecord) -> None:
        pass


class EmfSink:
    """One CloudWatch Embedded Metric Format line per call."""

    def __init__(
        self, stream: IO[str] | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._stream = stream  # None: sys.stderr as it is at emit time (tests swap it)
        self._clock = clock

    def line(self, record: CallRecord) -> str:
        ended = record.ended_at if record.ended_at is not None else self._clock()
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(ended * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [list(DIMENSIONS)],
                        "Metrics": [{"Name": n, "Unit": u} for n, u in EMF_METRICS],
                    }
                ],
            },
            "Provider": record.provider,
            "Model": record.model,
            "TokensUsed": record.tokens,
            "EstimatedCost": record.cost_usd or 0.0,
            "LatencyMs": round(record.latency_ms, 3),
            # Properties, not dimensions: searchable in Logs Insights without adding metrics.
            "Status": record.status,
            "Attempts": len(record.attempts),
        }
        if record.model_used:
            document["ModelUsed"] = record.model_used
        if record.request_id:
            document["RequestId"] = record.request_id
        return json.dumps(document, ensure_ascii=False)

    def emit(self, record: CallRecord) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(self.line(record) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed stderr must not fail the call
            pass


class OtelSink:
    """A span per call and per attempt with the GenAI semantic-convention attributes."""

    def __init__(self, tracer: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer or trace.get_tracer("gatehouse")

    def emit(self, record: CallRecord) -> None:
        try:
            self._emit(record)
        except Exception as exc:  # an exporter bug must not fail the call
            log.debug("OpenTelemetry span failed: %s", exc)

    def _emit(self, record: CallRecord) -> None:
        end_ns = int((record.ended_at if record.ended_at is not None else time.time()) * 1e9)
        start_ns = end_ns - int(record.latency_ms * 1e6)
        attributes = {
            **_gen_ai(record.model, record.model_used, record.input_tokens, record.output_tokens),
            "gatehouse.provider": record.provider,
            "gatehouse.cost_usd": record.cost_usd or 0.0,
            "gatehouse.status": record.status,
            "gatehouse.attempts": len(record.attempts),
            "gatehouse.request_id": record.request_id,
        }
        span = self._tracer.start_span(
            f"chat {record.model}",
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=start_ns,
        )
        self._status(span, record.status)
        context = self._trace.set_span_in_context(span)
        # Attempts ran one after another; lay them end to end from the call's start.
        at = start_ns
        for number, attempt in enumerate(record.attempts, start=1):
            took = int((attempt.latency_ms or 0) * 1e6)
            child = self._tracer.start_span(
                f"attempt {number} {attempt.provider}",
                context=context,
                kind=self._trace.SpanKind.CLIENT,
                attributes={
                    **_gen_ai(
                        record.model,
                        attempt.model_used,
                        attempt.input_tokens,
                        attempt.output_tokens,
                    ),
                    "gatehouse.provider": attempt.provider,
                    "gatehouse.cost_usd": attempt.cost_usd or 0.0,
                    "gatehouse.status": attempt.status,
                    "gatehouse.attempt": number,
                },
                start_time=at,
            )
            self._status(child, attempt.status)
            at = min(at + took, end_ns)
            child.end(end_time=at)
        span.end(end_time=end_ns)

    def _status(self, span: Any, status: str) -> None:
        if status != "ok":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, status))


class MultiSink:
    def __init__(self, sinks: Sequence[MetricsSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, record: CallRecord) -> None:
        for sink in self.sinks:
            sink.emit(record)


def _gen_ai(
    model: str, model_used: str | None, input_tokens: int | None, output_tokens: int | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM,
        "gen_ai.request.model": model,
    }
    if model_used:
        attributes["gen_ai.response.model"] = model_used
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    return attributes


def otel_available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def sink_from_env(env: Mapping[str, str] | None = None) -> MetricsSink:
    """The sinks GATEHOUSE_METRICS names; SettingError for an unknown name."""
    raw = (settings.get("GATEHOUSE_METRICS", env) or "").strip().lower()
    names = [n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise SettingError(
            f"GATEHOUSE_METRICS={raw!r} names {', '.join(unknown)}; use emf, otel, emf,otel or "
            "leave it unset"
        )
    sinks: list[MetricsSink] = []
    for name in dict.fromkeys(names):
        if name == "emf":
            sinks.append(EmfSink())
        elif otel_available():
            sinks.append(OtelSink())
        else:
            log.info("GATEHOUSE_METRICS=otel but opentelemetry is not installed; no spans")
    if not sinks:
        return NullSink()
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)
