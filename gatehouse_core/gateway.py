"""`Gateway`: one call in, fallback across providers, retries, limits, cost and audit out.

Data flow of one call: order providers (requested or default first, then by priority,
skipping those cooling down; at most MAX_PROVIDERS_PER_CALL) → per provider: wait for a
rate-limit slot → reserve the attempt's worst-case cost against the budgets (BudgetExceeded
ends the call before any request) → call the openai client → classify the outcome with policy.py → retry with
backoff, fall back, or finish → settle usage and cost (rate-limit permit and budget
reservation) → one audit row per attempt to the background writer → one log line and one
metrics record per call → a throttled background alert check. Nothing on that path touches the database: configs, prices
and limits are cached.

Bounds: each attempt ends at GATEHOUSE_REQUEST_TIMEOUT (a total, see deadlines.py), the whole
call (queueing, retries, fallback) at GATEHOUSE_CALL_TIMEOUT. Whatever goes wrong inside an
attempt ends that attempt with an audit row and moves on; chat() and stream() raise only
GatewayError subclasses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import openai

from . import lifecycle, settings
from .clients import ClientFactory, ClientPool, Lease, default_client_factory
from .deadlines import AttemptDeadline
from .errors import (
    AllProvidersFailed,
    BudgetExceeded,
    ConfigError,
    DatabaseUnavailable,
    GatewayError,
    InvalidRequest,
    RateLimited,
    SecretsError,
    StreamInterrupted,
)
from .estimates import OutputEstimate
from .health import HealthBook, ProviderHealth
from .inflight import InFlight, Running
from .metrics import AttemptRecord, CallRecord
from .policy import (
    HINTS,
    MAX_PROVIDERS_PER_CALL,
    MAX_RETRIES,
    TIMEOUT,
    Decision,
    Outcome,
    ProviderBodyError,
    classify,
    decide,
    retry_wait_seconds,
)
from .providers import is_valid_model_id, model_id_error
from .registry import Registry, ResolvedProvider
from .results import Attempt, ChatResult
from .sanitize import clean_field, clean_row, first_unencodable
from .spend.budget_rules import CallInfo
from .streams import ChatStream, Piece, StreamState
from .telemetry import scrub, truncate

__all__ = ["ChatStream", "Gateway", "ProviderHealth", "default_client_factory"]

log = logging.getLogger("gatehouse.gateway")
# The chat format's tokens around the messages (OpenAI's count), for the rate-limit estimate.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3

# How long Gateway.close() waits for abandoned streams still being drained for their usage.
DRAIN_JOIN_SECONDS = 5.0
MIN_REQUEST_SECONDS = 0.001  # httpx reads a timeout of 0 as "no time at all"
Messages = Sequence[Mapping[str, Any]]


class Permit(Protocol):
    wait_ms: float

    def settle(self, actual_tokens: int) -> None: ...
    def release(self) -> None: ...


class Hold(Protocol):
    """A budget reservation (spend/budgets.py `Reservation`)."""

    amount_usd: float

    def settle(self, actual_cost_usd: float | None) -> None: ...
    def release(self) -> None: ...


@dataclass
class _Call:
    """Everything about one gateway call that the attempt loop needs."""

    messages: list[dict[str, Any]]
    model: str | None
    provider: str | None
    max_tokens: int | None
    temperature: float | None
    workflow_id: str | None
    trace_id: str | None
    source: str
    actor: str | None
    kwargs: dict[str, Any]
    # A provider whose model fails this is not tried (an API token's model patterns: a
    # fallback answers with its own default model, which the token may not be allowed).
    allowed_models: Callable[[str], bool] | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: list[Attempt] = field(default_factory=list)
    started: float = 0.0  # the gateway's clock, for latency and TTFT
    deadline: float = float("inf")  # time.monotonic(), GATEHOUSE_CALL_TIMEOUT
    deadline_passed: bool = False
    pending_row: dict[str, Any] | None = None  # the last failed attempt's row, not yet sent
    hold: Hold | None = None  # the running attempt's budget reservation; a drain takes it over
    stopped: bool = False  # the process is ending: its running attempt was recorded (inflight.py)

    @classmethod
    def create(cls, messages: Messages, **fields: Any) -> _Call:
        """A call from `chat`/`stream` arguments, refusing what no provider could answer.

        Caller text that lands in audit rows and log lines is cleaned here, once (see
        sanitize.py), so one odd string cannot break the audit writer."""
        if not messages:
            raise InvalidRequest("messages is empty: send at least one message")
        model = fields.get("model")
        if model is not None and not is_valid_model_id(model):
            raise InvalidRequest(model_id_error(model))
        bad = first_unencodable([dict(m) for m in messages], "messages")
        if bad is not None:
            raise InvalidRequest(
                f"{bad} contains a character that cannot be sent (a lone surrogate such as "
                "U+D800, usually from bytes decoded with errors='surrogateescape'); decode the "
                "text as UTF-8 with errors='replace' and send it again"
            )
        fields["source"] = fields.get("source") or "library"
        for name in ("workflow_id", "trace_id", "source", "actor"):
            value = fields.get(name)
            fields[name] = clean_field(name, value if value is None else str(value))
        return cls(messages=[dict(m) for m in messages], **fields)

    def prompt_tokens_estimate(self) -> int:
        return sum(len(str(m.get("content") or "")) for m in self.messages) // 4

    def estimated_tokens(self) -> int:
        """What the rate limiter charges before the call: the prompt estimate plus the chat
        format's own tokens (OpenAI's count: 3 per message and 3 priming the reply; without
        them a short prompt is under-counted by half) plus max_tokens. It bounds the call's
        real usage only when max_tokens is set; otherwise the output is unknown until after,
        and `_acquire` adds the provider's recent output guess (estimates.py)."""
        overhead = TOKENS_PER_MESSAGE * len(self.messages) + REPLY_PRIMING_TOKENS
        return self.prompt_tokens_estimate() + overhead + (self.max_tokens or 0)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class _Interrupted(Exception):
    """A stream failed after its first chunk was delivered (billed: `state` is what came)."""

    def __init__(self, outcome: Outcome, state: StreamState, ttft_ms: float | None):
        self.outcome = outcome
        self.state = state
        self.partial = "".join(state.parts)
        self.ttft_ms = ttft_ms


class _DeadlinePassed(Exception):
    """The watchdog cut the stream, and it ended without its final chunk."""


@dataclass
class _Step:
    """How one attempt ended: an answer, a queue refusal, or a classified failure."""

    result: ChatResult | None = None
    queue_refused: bool = False
    budget_refused: bool = False  # only provider budgets refused: the next provider may take it
    outcome: Outcome | None = None
    error: GatewayError | None = None  # raise this: the call is over


class Gateway:
    """Thread-safe; build one per process and share it."""

    def __init__(
        self,
        registry: Registry,
        *,
        catalog: Any = None,
        limiter: Any = None,
        audit: Any = None,
        budgets: Any = None,
        metrics: Any = None,
        alerts: Any = None,
        timeout: float = 120.0,
        call_timeout: float = 300.0,
        retry_after_cap: float = 30.0,
        queue_timeout: float = 10.0,
        cooldown_seconds: float = 30.0,
        client_factory: ClientFactory = default_client_factory,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] | None = None,
    ):
        self.registry = registry
        self.catalog = catalog
        self.limiter = limiter
        self.audit = audit
        self.budgets = budgets  # spend/budgets.py Budgets: reserve before, settle after
        self.metrics = metrics  # metrics.py sink: one CallRecord per call
        self.alerts = alerts  # spend/alerts.py Alerts: cooldown alerts, throttled checks
        self.timeout = timeout
        self.call_timeout = call_timeout
        self.retry_after_cap = retry_after_cap
        self.queue_timeout = queue_timeout
        self._book = HealthBook(clock, cooldown_seconds)
        self._clients = ClientPool(client_factory, timeout)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._drains: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._running = InFlight()
        self._outputs = OutputEstimate()  # the limiter's output guess when max_tokens is unset
        lifecycle.register_gateway(self)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
        registry: Registry | None = None,
    ) -> Gateway:
        """A gateway wired from GATEHOUSE_* settings: database, secrets, Redis, audit writer,
        budgets, metrics sink (GATEHOUSE_METRICS) and alerts. Building it reads nothing from the
        database; budgets read their rules and month-to-date spend at most every few seconds.

        Pass `registry` to share one engine and secrets box with the caller (CLI, console).
        """
        from .audit import AuditWriter, default_spill_dir
        from .catalog import Catalog
        from .crypto import SecretBox
        from .db import make_engine
        from .metrics import sink_from_env
        from .ratelimit import RateLimiter
        from .spend.alerts import Alerts
        from .spend.budgets import Budgets

        if registry is None:
            engine = make_engine(database_url or settings.get("GATEHOUSE_DATABASE_URL", env))
            registry = Registry(engine, SecretBox.from_env(env), env=env)
        engine = registry.engine
        catalog = Catalog(engine)
        redis_url = settings.get("GATEHOUSE_REDIS_URL", env)
        return cls(
            registry,
            catalog=catalog,
            limiter=RateLimiter(redis_url),
            audit=AuditWriter(engine, spill_dir=default_spill_dir(env)),
            budgets=Budgets(engine, catalog, redis_url),
            metrics=sink_from_env(env),
            alerts=Alerts(engine, env=env, background=True),
            timeout=settings.get_float("GATEHOUSE_REQUEST_TIMEOUT", env),
            call_timeout=settings.get_float("GATEHOUSE_CALL_TIMEOUT", env),
            retry_after_cap=settings.get_float("GATEHOUSE_RETRY_AFTER_CAP", env),
            queue_timeout=settings.get_float("GATEHOUSE_QUEUE_TIMEOUT", env),
            cooldown_seconds=settings.get_float("GATEHOUSE_COOLDOWN_SECONDS", env),
        )

    # ---- public API ------------------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        workflow_id: str | None = None,
        trace_id: str | None = None,
        source: str | None = None,
        actor: str | None = None,
        allowed_models: Callable[[str], bool] | None = None,
        **openai_kwargs: Any,
    ) -> ChatResult:
        """Send a chat completion with fallback and retries; raises a GatewayError on failure."""
        call = _Call.create(
            messages,
            model=model,
            provider=provider,
            max_tokens=max_tokens,
            temperature=temperature,
            workflow_id=workflow_id,
            trace_id=trace_id,
            source=source,
            actor=actor,
            allowed_models=allowed_models,
            kwargs=openai_kwargs,
        )
        gen = self._run(call, stream=False)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        workflow_id: str | None = None,
        trace_id: str | None = None,
        source: str | None = None,
        actor: str | None = None,
        allowed_models: Callable[[str], bool] | None = None,
        **openai_kwargs: Any,
    ) -> ChatStream:
        """Stream text deltas; fallback and retries happen until the first token arrives."""
        call = _Call.create(
            messages,
            model=model,
            provider=provider,
            max_tokens=max_tokens,
            temperature=temperature,
            workflow_id=workflow_id,
            trace_id=trace_id,
            source=source,
            actor=actor,
            allowed_models=allowed_models,
            kwargs=openai_kwargs,
        )
        return ChatStream(self._run(call, stream=True), call.request_id)

    def health(self) -> list[ProviderHealth]:
        """Per-provider health in this process, including any active cooldown."""
        return self._book.snapshot()

    @property
    def cooldown_seconds(self) -> float:
        return self._book.cooldown_seconds

    @cooldown_seconds.setter
    def cooldown_seconds(self, seconds: float) -> None:
        self._book.cooldown_seconds = seconds

    def join_drains(self, timeout: float = DRAIN_JOIN_SECONDS) -> bool:
        """Wait until abandoned streams have been read to their end and audited; False if
        some are still being read after `timeout` seconds."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._drains)
            if not pending:
                return True
            for thread in pending:
                thread.join(max(end - time.monotonic(), 0))
            if time.monotonic() >= end:
                with self._lock:
                    return not self._drains

    def interrupt_running(self, reason: str) -> int:
        """Audit every attempt still on the wire as stopped by `reason` (the process is about to
        end: lifecycle.py calls this on SIGTERM's default action and at exit); returns how many.
        The provider may bill them, so a stream's row carries what had arrived (estimated like
        any cut stream); a plain call's cost is unknown until reconciliation."""
        taken = self._running.stop_all()
        for running in taken:
            call, name, state = running.call, running.provider.config.name, running.state
            partial = state is not None and state.received_chars > 0
            details = self._received(call, running.model, state) if state is not None else None
            attempt = Attempt(
                name,
                running.model,
                "incomplete" if partial else "error",
                error_type="process_stopped",
                latency_ms=(self._clock() - running.t0) * 1000,
                wait_ms=running.wait_ms,
                error_message=f"the process stopped ({reason}) before the answer was complete; "
                "the provider may still bill this request",
            )
            try:
                self._write(call, attempt, details, final=True)
            except Exception:  # the process is ending: keep going for the other calls
                log.exception("could not audit a stopped attempt", extra={"fields": _ids(call)})
        if taken:
            log.warning(
                "process stopping: %d running attempt(s) audited as process_stopped", len(taken)
            )
        return len(taken)

    def close(self) -> None:
        """Finish draining abandoned streams, flush audit rows and close HTTP clients."""
        self.join_drains()
        if self.audit is not None:
            self.audit.close()
        if self.limiter is not None and hasattr(self.limiter, "close"):
            self.limiter.close()  # its pending Redis token corrections
        self._clients.close()

    # ---- the call --------------------------------------------------------------------------

    def _run(self, call: _Call, *, stream: bool) -> Generator[Piece, None, ChatResult]:
        """The call, with one promise kept whatever happens: a GatewayError or a result."""
        call.started = self._clock()
        call.deadline = time.monotonic() + self.call_timeout
        unexpected: GatewayError | None = None
        try:
            return (yield from self._attempt_all(call, stream))
        except GatewayError:
            raise
        except Exception as exc:  # a bug of ours must still not reach the caller raw
            log.exception("gateway call failed unexpectedly", extra={"fields": _ids(call)})
            unexpected = AllProvidersFailed(
                f"GateHouse failed unexpectedly ({type(exc).__name__}); the gateway log has "
                f"the details (request {call.request_id}). Retry the request.",
                attempts=call.attempts,
                request_id=call.request_id,
            )
        finally:
            self._submit_pending(call, final=True)
        raise unexpected  # outside the except block: no __context__ back to the SDK

    def _attempt_all(self, call: _Call, stream: bool) -> Generator[Piece, None, ChatResult]:
        order = self._order(call)
        tried = order[:MAX_PROVIDERS_PER_CALL]
        limited_everywhere = bool(tried)
        for index, provider in enumerate(tried):
            if call.remaining() <= 0:
                call.deadline_passed = True
                limited_everywhere = False
                break
            model = call.model if index == 0 and call.model else provider.config.default_model
            if call.allowed_models is not None and not call.allowed_models(model):
                continue  # nothing was sent: no attempt, no row
            result, limited, error = yield from self._try_provider(call, provider, model, stream)
            if result is not None:
                return result
            if error is not None:
                self._finish_failed(call)
                raise error
            limited_everywhere = limited_everywhere and limited
        self._finish_failed(call)
        if call.attempts and all(a.error_type == "budget" for a in call.attempts):
            raise BudgetExceeded(  # every provider's own budget refused it
                " ".join(a.error_message or "" for a in call.attempts),
                attempts=call.attempts,
                request_id=call.request_id,
            )
        if limited_everywhere:
            raise RateLimited(
                "Every provider is at its rate limit and no slot opened within "
                f"{self.queue_timeout:g}s (GATEHOUSE_QUEUE_TIMEOUT); retry later or raise the limits.",
                attempts=call.attempts,
                request_id=call.request_id,
            )
        notes = []
        if call.deadline_passed:
            notes.append(
                f"the call ran out of time ({self.call_timeout:g}s, GATEHOUSE_CALL_TIMEOUT)"
            )
        if len(order) > len(tried):
            notes.append(
                f"only the first {len(tried)} of {len(order)} providers were tried "
                "(at most MAX_PROVIDERS_PER_CALL per call)"
            )
        raise AllProvidersFailed(
            _failure_summary(call.attempts, notes),
            attempts=call.attempts,
            request_id=call.request_id,
        )

    def _order(self, call: _Call) -> list[ResolvedProvider]:
        problem: str | None = None
        try:
            snapshot = self.registry.snapshot()
        except (DatabaseUnavailable, ConfigError, SecretsError) as exc:
            problem = str(exc)
        if problem is not None:  # raised outside the except block, so no __context__
            raise AllProvidersFailed(
                f"The provider configuration could not be loaded: {problem} "
                "No request was sent; retry once the database answers.",
                request_id=call.request_id,
            )
        ordered = snapshot.ordered()
        if not snapshot.providers:
            raise AllProvidersFailed(
                "No LLM provider is configured: add one with `gatehouse providers add` or the "
                "console's Providers page, or set CODEGEN_API_KEY.",
                request_id=call.request_id,
            )
        if call.provider is not None:
            chosen = snapshot.get(call.provider)
            if chosen is None or not chosen.config.enabled:
                names = ", ".join(p.config.name for p in ordered) or "none"
                state = "is disabled" if chosen else "does not exist"
                raise InvalidRequest(
                    f"Provider {call.provider!r} {state}; enabled providers: {names}"
                )
            ordered = [chosen, *(p for p in ordered if p.config.name != call.provider)]
        cooling = self._book.cooling([p.config.name for p in ordered])
        ready = [p for p in ordered if p.config.name not in cooling]
        return ready or ordered  # all cooling down: trying beats refusing outright

    # ---- one provider ----------------------------------------------------------------------

    def _try_provider(
        self, call: _Call, provider: ResolvedProvider, model: str, stream: bool
    ) -> Generator[Piece, None, tuple[ChatResult | None, bool, GatewayError | None]]:
        """Up to 1 + MAX_RETRIES tries on one provider.

        Returns (result, refused only by the rate-limit queue, error that ends the call)."""
        name = provider.config.name
        if provider.api_key is None:
            message = (
                provider.key_error
                or f"provider {name!r} has no API key; set one with `gatehouse providers set-key {name}`"
            )
            self._record(
                call, Attempt(name, model, "rejected", error_type="no_key", error_message=message)
            )
            return None, False, None
        lease, outcome = self._lease(provider)
        if lease is None:
            assert outcome is not None
            self._record(call, self._failed_attempt(provider, model, outcome))
            self._mark(name, ok=False, error=outcome.message)
            return None, False, None
        try:
            wait_s = 0.0
            for retry in range(MAX_RETRIES + 1):
                step = yield from self._attempt(call, provider, lease, model, stream, wait_s)
                if step.result is not None:
                    self._mark(name, ok=True)
                    return step.result, False, None
                if step.budget_refused:  # no health mark for the refusal itself
                    if outcome is not None:  # a retry refused: the provider had failed
                        self._mark(name, ok=False, error=outcome.message)
                    return None, False, None
                if step.queue_refused:  # limited only if nothing else went wrong here
                    if outcome is not None:  # a retry refused a slot: the provider had failed
                        self._mark(name, ok=False, error=outcome.message)
                    return None, retry == 0, None
                assert step.outcome is not None
                outcome = step.outcome
                if step.error is not None:
                    if outcome.decision is not Decision.FAIL:
                        self._mark(name, ok=False, error=outcome.message)
                    return None, False, step.error
                if decide(outcome, self.retry_after_cap) is Decision.FALLBACK:
                    break
                if retry == MAX_RETRIES:
                    break
                wait_s = self._retry_wait(outcome, retry)
                if wait_s >= call.remaining():
                    call.deadline_passed = True
                    break
                self._sleep(wait_s)  # no slot is held while sleeping
            assert outcome is not None
            self._mark(name, ok=False, error=outcome.message)  # one failed call, not per retry
            return None, False, None
        finally:
            lease.release()

    def _lease(self, provider: ResolvedProvider) -> tuple[Lease | None, Outcome | None]:
        try:
            return self._clients.lease(provider), None
        except Exception as exc:  # a client factory that fails ends this provider's turn
            return None, classify(exc)

    def _attempt(
        self,
        call: _Call,
        provider: ResolvedProvider,
        lease: Lease,
        model: str,
        stream: bool,
        wait_s: float,
    ) -> Generator[Piece, None, _Step]:
        """One request: reserve the budget, take a slot, send, read, release the slot, record
        the outcome.

        The rate-limit slot is taken last, right before the send: the provider counts arrivals,
        so anything slow between admission and sending (the budget check reads the database,
        debug logging) would let arrivals bunch up past the window (issue 13)."""
        name = provider.config.name
        refusal = self._reserve(call, provider, model)
        if refusal is not None:  # nothing was sent and no slot was taken
            return refusal
        args = self._request_args(call, model)
        queue_s = max(min(self.queue_timeout, call.remaining()), 0.0)
        try:
            permit = self._acquire(provider, call, queue_s)
        except Exception as exc:  # the limiter failing must not fail the call
            self._settle_hold(call, None)
            outcome = classify(exc)
            self._record(call, self._failed_attempt(provider, model, outcome))
            return _Step(outcome=outcome)
        if permit is False:
            self._settle_hold(call, None)
            self._record(
                call,
                Attempt(
                    name,
                    model,
                    "rejected",
                    error_type="rate_limit_queue",
                    wait_ms=queue_s * 1000,
                    error_message=f"no rate-limit slot within {queue_s:g}s",
                ),
            )
            return _Step(queue_refused=True)
        wait_ms = wait_s * 1000 + (permit.wait_ms if permit else 0.0)
        t0 = self._clock()
        deadline = self._attempt_deadline(call)
        if not self._running.start(Running(call, provider, model, t0, wait_ms)):
            if permit:
                permit.release()
                permit.settle(0)
            self._settle_hold(call, None)
            return self._not_sent_stopping(call, provider, model)
        outcome: Outcome | None = None
        cut: _Interrupted | None = None
        result: ChatResult | None = None
        try:
            if stream:
                result = yield from self._stream_once(
                    lease, call, provider, model, args, t0, wait_ms, deadline, permit or None
                )
            else:
                result = self._call_once(
                    lease.client, call, provider, model, args, t0, wait_ms, deadline
                )
        except _Interrupted as exc:
            cut, outcome = exc, exc.outcome
        except Exception as exc:  # anything at all ends this attempt, classified
            outcome = self._outcome(exc, deadline, call)
        finally:
            if permit:
                permit.release()
            if cut is None:
                self._settle_hold(call, result)
        if result is not None:
            if permit and (result.input_tokens is not None or result.output_tokens is not None):
                permit.settle((result.input_tokens or 0) + (result.output_tokens or 0))
                if call.max_tokens is None:
                    self._outputs.note(name, result.output_tokens)
            return _Step(result=result)  # without usage the estimate stays charged
        outcome = _redacted(outcome, provider)
        ttft = cut.ttft_ms if cut else None
        status = "incomplete" if cut else "error"
        received = self._account_cut(call, model, cut.state, permit) if cut else None
        self._record(
            call,
            self._failed_attempt(provider, model, outcome, t0, wait_ms, status, ttft),
            received,
        )
        if cut is not None:
            return _Step(
                outcome=outcome,
                error=StreamInterrupted(
                    f"The stream from {name} broke after the first token: {outcome.message}. "
                    "The partial answer is kept; send the request again for a full one.",
                    partial_text=cut.partial,
                    attempts=call.attempts,
                    request_id=call.request_id,
                ),
            )
        if permit:
            permit.settle(0)  # nothing was generated: give the token estimate back
        if decide(outcome, self.retry_after_cap) is Decision.FAIL:
            return _Step(
                outcome=outcome,
                error=InvalidRequest(
                    f"{name} rejected the request ({outcome.http_status}): {outcome.message}",
                    attempts=call.attempts,
                    request_id=call.request_id,
                ),
            )
        return _Step(outcome=outcome)

    def _not_sent_stopping(self, call: _Call, provider: ResolvedProvider, model: str) -> _Step:
        message = "the process is stopping; the request was not sent"
        self._record(
            call,
            Attempt(
                provider.config.name,
                model,
                "rejected",
                error_type="process_stopping",
                error_message=message,
            ),
        )
        outcome = Outcome(Decision.FAIL, "process_stopping", message)
        error = AllProvidersFailed(message, attempts=call.attempts, request_id=call.request_id)
        return _Step(outcome=outcome, error=error)

    def _call_once(
        self,
        client: openai.OpenAI,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        args: dict[str, Any],
        t0: float,
        wait_ms: float,
        deadline: AttemptDeadline,
    ) -> ChatResult:
        timeout = max(deadline.remaining(), MIN_REQUEST_SECONDS)
        try:
            # The streaming-response form hands us the response before its body is read, so
            # the deadline can cut a body that trickles in.
            with client.chat.completions.with_streaming_response.create(
                **args, timeout=timeout
            ) as raw:
                deadline.watch(raw.http_response)
                # The JSON as sent, not the SDK's model: building the model and dumping it
                # back for `ChatResult.response` cost ~0.1 ms a call, on every call.
                try:
                    response = raw.json()
                except ValueError:  # httpx's JSONDecodeError, an undecodable body
                    raise ProviderBodyError(
                        {"code": 502, "message": "the response body was not JSON"}
                    ) from None
        finally:
            deadline.cancel()
        if not isinstance(response, dict):
            response = {}
        choices = response.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):  # HTTP 200 with a top-level `error` and no choices
            error = response.get("error")
            raise ProviderBodyError(
                error
                if isinstance(error, dict)
                else {"code": 502, "message": "response had no choices"}
            )
        choice_error = choice.get("error")
        if choice_error:  # generation failed part-way: the text is cut short, not an answer
            raise ProviderBodyError(
                choice_error if isinstance(choice_error, dict) else {"message": str(choice_error)}
            )
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        state = StreamState(
            parts=[content if isinstance(content, str) else ""],
            usage=response.get("usage"),
            response_model=response.get("model"),
            generation_id=response.get("id"),
            finish_reason=choice.get("finish_reason"),
        )
        return self._succeed(call, provider, model, t0, wait_ms, state, response)

    def _stream_once(
        self,
        lease: Lease,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        args: dict[str, Any],
        t0: float,
        wait_ms: float,
        deadline: AttemptDeadline,
        permit: Permit | None,
    ) -> Generator[Piece, None, ChatResult]:
        timeout = max(deadline.remaining(), MIN_REQUEST_SECONDS)
        try:
            upstream = lease.client.chat.completions.create(**args, stream=True, timeout=timeout)
        except BaseException:
            deadline.cancel()
            raise
        deadline.watch(upstream.response)
        state = StreamState()
        self._running.note_stream(call, state)
        name = provider.config.name
        early: list[Any] = []  # chunks before the first with answer in it (role, keep-alive)
        handed_off = False
        try:
            for chunk in upstream:
                text, substantive = state.absorb(chunk)
                if not state.delivered:  # until then a failure may still fall back
                    if not substantive:
                        early.append(chunk)
                        continue
                    state.first_token_at = self._clock()
                    state.delivered = True
                    for before in early:
                        yield Piece("", before, name)
                    early = []
                yield Piece(text, chunk, name)
            if deadline.fired and state.finish_reason is None:  # cut, not finished
                raise _DeadlinePassed
            for before in early:  # an answer without content: still every chunk, in order
                yield Piece("", before, name)
        except GeneratorExit:  # the caller stopped reading: drain the rest in the background
            handed_off = self._abandon(
                call, provider, model, t0, wait_ms, upstream, state, lease, permit
            )
            raise
        except Exception as exc:
            if state.delivered:
                outcome = self._outcome(exc, deadline, call)
                ttft = _ms(state.first_token_at, t0)
                raise _Interrupted(outcome, state, ttft) from None
            raise
        finally:
            if not handed_off:
                _close_quietly(upstream)
                deadline.cancel()
        return self._succeed(call, provider, model, t0, wait_ms, state)

    # ---- budgets ---------------------------------------------------------------------------

    def _reserve(self, call: _Call, provider: ResolvedProvider, model: str) -> _Step | None:
        """Reserve this attempt's worst case (kept on `call.hold`); a _Step ending the call when
        a `block` budget refuses it, None to go ahead.

        A refusal ends the whole call, with no fallback, unless every `block` budget that applies
        is scoped to this provider (then the refusal was one of them, and the next provider may
        take the call): a global, source or actor budget would refuse every provider alike.
        A budget the admitter cannot evaluate (a bug, a broken catalog) never fails the call."""
        if self.budgets is None:
            return None
        info = CallInfo(
            provider=provider.config.name,
            model=model,
            prompt_tokens=call.prompt_tokens_estimate(),
            max_tokens=call.max_tokens,
            source=call.source,
            actor=call.actor,
        )
        try:
            call.hold = self.budgets.reserve(info)
            return None
        except BudgetExceeded as exc:
            message = str(exc)
        except Exception:
            log.warning("budget check failed; the call goes ahead", exc_info=True)
            return None
        # Built outside the except block: no __context__ chain back into the admitter.
        self._record(
            call,
            Attempt(
                provider.config.name, model, "rejected", error_type="budget", error_message=message
            ),
        )
        if self._only_provider_budgets(info):
            return _Step(budget_refused=True)
        return _Step(
            outcome=Outcome(Decision.FAIL, "budget", message),
            error=BudgetExceeded(message, attempts=call.attempts, request_id=call.request_id),
        )

    def _only_provider_budgets(self, info: CallInfo) -> bool:
        try:  # the rules of the admitter's cached snapshot: no database read
            rules = [r for r in self.budgets.rules() if r.action == "block" and r.applies_to(info)]
        except Exception:
            return False
        return bool(rules) and all(r.scope == "provider" for r in rules)

    def _settle_hold(self, call: _Call, result: ChatResult | None) -> None:
        """Settle the attempt's reservation with its cost, or release it when it failed. A
        stream handed to a drain thread took the reservation over (call.hold is None then)."""
        hold, call.hold = call.hold, None
        if hold is None:
            return
        try:
            if result is None:
                hold.release()
            else:  # an unknown cost counts as the reserved worst case, never as $0
                hold.settle(result.cost_usd if result.cost_usd is not None else hold.amount_usd)
        except Exception:  # the answer is already here; the reservation lapses by its TTL
            log.warning("settling the budget reservation failed", exc_info=True)

    def _mark(self, name: str, *, ok: bool, error: str | None = None) -> None:
        """Record a provider's outcome; when it enters cooldown, raise the cooldown alert."""
        until = self._book.mark(name, ok=ok, error=error)
        if until is None or self.alerts is None:
            return
        try:
            self.alerts.provider_cooldown(name, until)
        except Exception:  # an alert must never fail the call it is about
            log.warning("cooldown alert for %s failed", name, exc_info=True)

    # ---- abandoned streams -----------------------------------------------------------------

    def _abandon(
        self,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        t0: float,
        wait_ms: float,
        upstream: Any,
        state: StreamState,
        lease: Lease,
        permit: Permit | None,
    ) -> bool:
        """Hand the rest of the stream to a drain thread; the upstream bills it anyway."""
        self._submit_pending(call, final=False)  # earlier attempts are not the outcome
        latency_ms = (self._clock() - t0) * 1000
        drain_lease = lease.share()  # the caller's lease goes now; the drain keeps the client
        hold, call.hold = call.hold, None  # settled by the drain with what it recorded

        def drain(read_rest: bool = True) -> None:
            cost: float | None = None
            try:
                cost = self._drain(
                    call, provider, model, latency_ms, wait_ms, upstream, state, read_rest
                )
                if permit is not None and state.usage is not None:  # the slot went back already
                    tokens = _usage_numbers(state.usage)
                    permit.settle((tokens["input_tokens"] or 0) + (tokens["output_tokens"] or 0))
            finally:
                if hold is not None:  # billed even if unread: unknown counts as reserved
                    with contextlib.suppress(Exception):
                        hold.settle(cost if cost is not None else hold.amount_usd)
                drain_lease.release()
                with self._lock:
                    self._drains.discard(threading.current_thread())

        thread = threading.Thread(target=drain, name="gatehouse-stream-drain", daemon=True)
        with self._lock:
            self._drains.add(thread)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: record what arrived, now
            drain(read_rest=False)
        return True

    def _drain(
        self,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        latency_ms: float,
        wait_ms: float,
        upstream: Any,
        state: StreamState,
        read_rest: bool,
    ) -> float | None:
        """Read to the final usage chunk (the attempt's deadline still cuts it), then audit;
        returns the cost recorded (None: unknown)."""
        if read_rest:
            with contextlib.suppress(Exception):  # whatever arrived is what we record
                for chunk in upstream:
                    state.absorb(chunk)
        _close_quietly(upstream)
        details = self._received(call, model, state)
        attempt = Attempt(
            provider.config.name,
            model,
            "incomplete",
            error_type="cancelled",
            latency_ms=latency_ms,
            wait_ms=wait_ms,
            error_message="the caller stopped reading the stream",
            ttft_ms=None,
        )
        self._record(call, attempt, details, final=True)
        self._log_completion(
            call,
            None,
            "cancelled",
            provider=provider.config.name,
            model=details["model_used"],
            latency_ms=latency_ms,
            cost_usd=details["cost_usd"],
            input_tokens=details["input_tokens"],
            output_tokens=details["output_tokens"],
        )
        return details["cost_usd"]

    def _received(self, call: _Call, model: str, state: StreamState) -> dict[str, Any]:
        """Audit details of a stream that ended early (billed all the same): its tokens and
        cost from the usage chunk if it came, else estimated from what arrived (output tokens
        from the characters received, prompt tokens from the request, cost from the catalog
        prices), and the generation id so reconciliation can correct the figure later."""
        used = state.response_model or model
        tokens = _usage_numbers(state.usage)
        if state.usage is not None:
            cost, cost_source = self._cost(used, state.usage, tokens)
        else:  # the final chunk never came: estimate what the provider will bill
            tokens["input_tokens"] = call.prompt_tokens_estimate()
            tokens["output_tokens"] = -(-state.received_chars // 4)  # a started token counts
            cost, cost_source = self._cost(used, None, tokens)
            cost_source = "estimated" if cost is not None else "unknown"
        return {
            "model_used": used,
            "generation_id": state.generation_id,
            "cost_usd": cost,
            "cost_source": cost_source,
            **tokens,
        }

    def _account_cut(
        self, call: _Call, model: str, state: StreamState, permit: Permit | None
    ) -> dict[str, Any]:
        """A stream cut after its first chunk (watchdog, connection reset, error event): the
        upstream bills what it generated, so the reservation settles to that figure, never to
        nothing (an unknown cost counts as the reserved worst case), and so does the permit."""
        details = self._received(call, model, state)
        hold, call.hold = call.hold, None
        if hold is not None:
            cost = details["cost_usd"]
            try:
                hold.settle(cost if cost is not None else hold.amount_usd)
            except Exception:  # the reservation lapses by its TTL
                log.warning("settling the budget reservation failed", exc_info=True)
        if permit:
            permit.settle((details["input_tokens"] or 0) + (details["output_tokens"] or 0))
        return details

    # ---- helpers ---------------------------------------------------------------------------

    def _attempt_deadline(self, call: _Call) -> AttemptDeadline:
        now = time.monotonic()
        seconds, setting = self.timeout, "GATEHOUSE_REQUEST_TIMEOUT"
        asked = call.kwargs.get("timeout")  # a caller's own openai `timeout=` can only shorten it
        if isinstance(asked, int | float) and not isinstance(asked, bool) and asked < seconds:
            seconds, setting = max(float(asked), 0.0), "the call's timeout argument"
        if now + seconds <= call.deadline:
            return AttemptDeadline(now + seconds, setting, seconds)
        return AttemptDeadline(call.deadline, "GATEHOUSE_CALL_TIMEOUT", self.call_timeout)

    def _outcome(self, exc: BaseException, deadline: AttemptDeadline, call: _Call) -> Outcome:
        if isinstance(exc, _DeadlinePassed) or (
            deadline.passed and not isinstance(exc, openai.APIStatusError | ProviderBodyError)
        ):
            if deadline.setting == "GATEHOUSE_CALL_TIMEOUT":
                call.deadline_passed = True
            return Outcome(*TIMEOUT, message=deadline.message())
        return classify(exc)

    def _retry_wait(self, outcome: Outcome, retry: int) -> float:
        if self._rand is None:
            return retry_wait_seconds(outcome, retry)
        return retry_wait_seconds(outcome, retry, self._rand)

    def _request_args(self, call: _Call, model: str) -> dict[str, Any]:
        kwargs = dict(call.kwargs)
        kwargs.pop("timeout", None)  # folded into the attempt's deadline
        extra_body = {"usage": {"include": True}, **(kwargs.pop("extra_body", None) or {})}
        args: dict[str, Any] = {
            "model": model,
            "messages": call.messages,
            "extra_body": extra_body,
            **kwargs,
        }
        if call.max_tokens is not None:
            args["max_tokens"] = call.max_tokens
        if call.temperature is not None:
            args["temperature"] = call.temperature
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "LLM request payload",
                extra={
                    "fields": {
                        "request_id": call.request_id,
                        "model": model,
                        "messages": [
                            {**m, "content": truncate(str(m.get("content") or ""))}
                            for m in call.messages
                        ],
                    }
                },
            )
        return args

    def _succeed(
        self,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        t0: float,
        wait_ms: float,
        state: StreamState,
        response: dict[str, Any] | None = None,
    ) -> ChatResult:
        now = self._clock()
        used = state.response_model or model
        tokens = _usage_numbers(state.usage)
        cost, cost_source = self._cost(used, state.usage, tokens)
        attempt = Attempt(
            provider.config.name,
            model,
            "ok",
            http_status=200,
            latency_ms=(now - t0) * 1000,
            wait_ms=wait_ms,
            ttft_ms=_ms(state.first_token_at, t0),
        )
        details = {
            "model_used": used,
            "generation_id": state.generation_id,
            "cost_usd": cost,
            "cost_source": cost_source,
            **tokens,
        }
        self._record(call, attempt, details, final=True)
        result = ChatResult(
            text="".join(state.parts),
            provider=provider.config.name,
            model=used,
            request_id=call.request_id,
            generation_id=state.generation_id,
            cost_usd=cost,
            cost_source=cost_source,
            latency_ms=(now - call.started) * 1000,
            ttft_ms=_ms(state.first_token_at, call.started),
            finish_reason=state.finish_reason,
            attempts=list(call.attempts),
            response=response,
            **tokens,
        )
        self._log_completion(call, result, "ok")
        return result

    def _cost(
        self, model: str, usage: Any, tokens: dict[str, int | None]
    ) -> tuple[float | None, str]:
        reported = _field(usage, "cost")
        if isinstance(reported, int | float) and not isinstance(reported, bool):
            return float(reported), "provider"
        if self.catalog is not None and tokens["input_tokens"] is not None:
            try:
                estimate = self.catalog.estimate_cost(
                    model,
                    tokens["input_tokens"] or 0,
                    tokens["output_tokens"] or 0,
                    tokens["cached_tokens"] or 0,
                )
            except Exception:  # prices are an extra: the answer is already here
                log.warning("cost estimate failed", exc_info=True)
                estimate = None
            if estimate is not None:
                return estimate, "estimated"
        return None, "unknown"

    def _failed_attempt(
        self,
        provider: ResolvedProvider,
        model: str,
        outcome: Outcome,
        t0: float | None = None,
        wait_ms: float = 0.0,
        status: str = "error",
        ttft_ms: float | None = None,
    ) -> Attempt:
        outcome = _redacted(outcome, provider)
        return Attempt(
            provider.config.name,
            model,
            status,
            http_status=outcome.http_status,
            error_type=outcome.error_type,
            latency_ms=(self._clock() - t0) * 1000 if t0 is not None else 0.0,
            wait_ms=wait_ms,
            error_message=outcome.message,
            ttft_ms=ttft_ms,
        )

    def _record(
        self,
        call: _Call,
        attempt: Attempt,
        details: Mapping[str, Any] | None = None,
        *,
        final: bool = False,
    ) -> None:
        """Keep the attempt on the call and queue its audit row.

        A failed attempt's row waits until the next attempt is recorded or the call ends, so
        the one row whose outcome the caller saw can be marked `final_attempt`. Nothing is
        recorded for a call the process stopped (`interrupt_running` wrote its row)."""
        if not self._running.claim(call):
            return
        self._write(call, attempt, details, final=final)

    def _write(
        self,
        call: _Call,
        attempt: Attempt,
        details: Mapping[str, Any] | None = None,
        *,
        final: bool = False,
    ) -> None:
        call.attempts.append(attempt)
        if self.audit is None:
            return
        row: dict[str, Any] = {
            "request_id": call.request_id,
            "attempt": len(call.attempts),
            "created_at": datetime.now(UTC),
            "provider": attempt.provider,
            "model": attempt.model,
            "model_used": None,
            "generation_id": None,
            "input_tokens": None,
            "output_tokens": None,
            "cached_tokens": None,
            "reasoning_tokens": None,
            "cost_usd": None,
            "cost_source": "unknown",
            "latency_ms": round(attempt.latency_ms, 2),
            "ttft_ms": round(attempt.ttft_ms, 2) if attempt.ttft_ms is not None else None,
            "status": attempt.status,
            "http_status": attempt.http_status,
            "error_type": attempt.error_type,
            "error_message": attempt.error_message,
            "workflow_id": call.workflow_id,
            "trace_id": call.trace_id,
            "source": call.source,
            "actor": call.actor,
            **(details or {}),
        }
        self._submit_pending(call, final=False)
        if final:
            self._submit(call, row, final=True)
        else:
            call.pending_row = row

    def _submit_pending(self, call: _Call, *, final: bool) -> None:
        row, call.pending_row = call.pending_row, None
        if row is not None:
            self._submit(call, row, final=final)

    def _submit(self, call: _Call, row: dict[str, Any], *, final: bool) -> None:
        first = call.attempts[0].provider if call.attempts else row["provider"]
        row["final_attempt"] = final
        row["fallback"] = final and row["provider"] != first
        try:
            self.audit.submit(clean_row(row))
        except Exception:  # the audit writer's trouble must not fail an answered call
            log.exception("audit row could not be queued", extra={"fields": _ids(call)})

    def _finish_failed(self, call: _Call) -> None:
        last = call.attempts[-1] if call.attempts else None
        self._log_completion(
            call,
            None,
            "error",
            provider=last.provider if last else None,
            model=last.model if last else call.model,
            latency_ms=(self._clock() - call.started) * 1000,
        )

    def _log_completion(
        self, call: _Call, result: ChatResult | None, status: str, **fallback: Any
    ) -> None:
        fields = {
            "provider": result.provider if result else fallback.get("provider"),
            "model": result.model if result else fallback.get("model"),
            "input_tokens": result.input_tokens if result else fallback.get("input_tokens"),
            "output_tokens": result.output_tokens if result else fallback.get("output_tokens"),
            "latency_ms": round(
                result.latency_ms if result else fallback.get("latency_ms", 0.0), 2
            ),
            "workflow_id": call.workflow_id,
            "trace_id": call.trace_id,
            "cost_usd": result.cost_usd if result else fallback.get("cost_usd"),
            "status": status,
            "attempts": len(result.attempts) if result else len(call.attempts),
            "request_id": call.request_id,
        }
        level = logging.INFO if result else logging.WARNING
        log.log(level, "LLM request completed", extra={"fields": fields})
        self._emit_metrics(call, fields)
        if self.alerts is not None:
            try:
                self.alerts.check_soon()  # throttled; the check itself runs in the background
            except Exception:
                log.warning("alert check could not start", exc_info=True)

    def _emit_metrics(self, call: _Call, fields: Mapping[str, Any]) -> None:
        """One CallRecord per call, from the completion log line's figures."""
        if self.metrics is None:
            return
        attempts = [
            AttemptRecord(a.provider, a.model, a.status, latency_ms=a.latency_ms)
            for a in call.attempts
        ]
        if attempts and fields["status"] != "error":  # the last attempt carried the answer
            last = attempts[-1]
            attempts[-1] = AttemptRecord(
                last.provider,
                fields["model"],
                last.status,
                fields["input_tokens"],
                fields["output_tokens"],
                fields["cost_usd"],
                last.latency_ms,
            )
        record = CallRecord(
            provider=fields["provider"] or "",
            model=call.model or fields["model"] or "",
            model_used=fields["model"] if fields["status"] != "error" else None,
            input_tokens=fields["input_tokens"] or 0,
            output_tokens=fields["output_tokens"] or 0,
            cost_usd=fields["cost_usd"],
            latency_ms=fields["latency_ms"],
            status=fields["status"],
            attempts=attempts,
            request_id=call.request_id,
        )
        try:
            self.metrics.emit(record)
        except Exception:  # sinks should not raise; a third-party one still must not fail us
            log.warning("metrics sink failed", exc_info=True)

    def _acquire(
        self, provider: ResolvedProvider, call: _Call, queue_s: float
    ) -> Permit | None | bool:
        """A permit, None when there is no limiter, or False when no slot opened in time."""
        if self.limiter is None:
            return None
        name, limit = provider.config.name, provider.config.rate_limit
        tokens = call.estimated_tokens()
        if call.max_tokens is None:  # output unbounded: charge a high guess, refund the rest
            guess = self._outputs.guess(name)
            if limit.tokens_per_minute is not None:  # a guess never makes a call unfit
                guess = min(guess, max(limit.tokens_per_minute - tokens, 0))
            tokens += guess
        permit = self.limiter.acquire(name, limit, tokens, queue_s)
        return False if permit is None else permit


def _ms(moment: float | None, since: float) -> float | None:
    return None if moment is None else (moment - since) * 1000


def _ids(call: _Call) -> dict[str, Any]:
    return {"request_id": call.request_id, "workflow_id": call.workflow_id}


def _close_quietly(upstream: Any) -> None:
    with contextlib.suppress(Exception):  # the connection may already be cut
        upstream.close()


def _redacted(outcome: Outcome, provider: ResolvedProvider) -> Outcome:
    """The outcome with this provider's own key removed, whatever its shape."""
    key = provider.api_key
    if not key or key not in outcome.message:
        return outcome
    return Outcome(
        outcome.decision,
        outcome.error_type,
        scrub(outcome.message.replace(key, "[REDACTED]")),
        outcome.http_status,
        outcome.retry_after,
    )


def _field(obj: Any, name: str) -> Any:
    """`name` of a JSON object (a plain answer's usage) or of an SDK model (a stream chunk's)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: Any) -> int | None:
    """A token count as the provider sent it; anything but a whole number is no count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _usage_numbers(usage: Any) -> dict[str, int | None]:
    prompt_details = _field(usage, "prompt_tokens_details")
    completion_details = _field(usage, "completion_tokens_details")
    return {
        "input_tokens": _count(_field(usage, "prompt_tokens")),
        "output_tokens": _count(_field(usage, "completion_tokens")),
        "cached_tokens": _count(_field(prompt_details, "cached_tokens")),
        "reasoning_tokens": _count(_field(completion_details, "reasoning_tokens")),
    }


SUMMARY_PROVIDERS = 3  # providers whose last error the failure message spells out


def _failure_summary(attempts: list[Attempt], notes: Sequence[str] = ()) -> str:
    """One short paragraph: counts per error kind, each provider's last error, the next step."""
    if not attempts:
        reason = "; ".join(notes) or "all are disabled or cooling down"
        return f"All providers failed. No provider could be tried ({reason})."
    kinds: dict[str, int] = {}
    last: dict[str, Attempt] = {}
    for a in attempts:
        kind = a.error_type or a.status
        kinds[kind] = kinds.get(kind, 0) + 1
        last[a.provider] = a
    counts = ", ".join(f"{n}× {kind}" for kind, n in kinds.items())
    shown = list(last.values())[-SUMMARY_PROVIDERS:]
    lines = []
    for a in shown:
        status = f"HTTP {a.http_status}" if a.http_status else a.error_type or a.status
        lines.append(f"{a.provider} ({a.model}): {status}: {a.error_message or a.error_type}")
    hidden = len(last) - len(shown)
    more = f"; and {hidden} more provider(s)" if hidden else ""
    hint = HINTS.get(attempts[-1].error_type or "")
    text = (
        f"All providers failed. {len(attempts)} attempt(s) on {len(last)} provider(s) "
        f"({counts}). " + "; ".join(lines) + more + "."
    )
    if notes:
        text += " Note: " + "; ".join(notes) + "."
    return text + (f" Next step: {hint}." if hint else "")
