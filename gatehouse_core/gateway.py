"""`Gateway`: one call in, fallback across providers, retries, limits, cost and audit out.

Data flow of one call: order providers (requested or default first, then by priority,
skipping those cooling down) → per provider: wait for a rate-limit slot → call the openai
client → classify the outcome with policy.py → retry with backoff, fall back, or finish →
settle usage and cost → one audit row per attempt to the background writer → one log line.
Nothing on that path touches the database: configs, prices and limits are cached.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import openai

from . import settings
from .errors import AllProvidersFailed, InvalidRequest, RateLimited, StreamInterrupted
from .policy import (
    HINTS,
    MAX_RETRIES,
    Decision,
    Outcome,
    ProviderBodyError,
    backoff_seconds,
    classify,
    decide,
)
from .providers import is_valid_model_id, model_id_error
from .registry import Registry, ResolvedProvider
from .results import Attempt, ChatResult
from .telemetry import truncate

log = logging.getLogger("gatehouse.gateway")

COOLDOWN_FAILURES = 5
COOLDOWN_WINDOW_SECONDS = 60.0
Messages = Sequence[Mapping[str, Any]]
ClientFactory = Callable[[ResolvedProvider, float], openai.OpenAI]


class Permit(Protocol):
    wait_ms: float

    def settle(self, actual_tokens: int) -> None: ...
    def release(self) -> None: ...


def default_client_factory(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
    """One OpenAI client per provider config; our loop is the only retry loop."""
    config = provider.config
    return openai.OpenAI(
        base_url=config.base_url,
        api_key=provider.api_key or "missing",
        max_retries=0,
        timeout=timeout,
        default_headers=dict(config.headers) or None,
    )


@dataclass
class ProviderHealth:
    """In-process health of one provider, shown by the console."""

    name: str
    consecutive_failures: int = 0
    first_failure_at: float | None = None  # monotonic, for the cooldown window
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    cooldown_until: float | None = None  # monotonic
    cooldown_until_wall: datetime | None = None

    def in_cooldown(self, now: float) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until


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
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: list[Attempt] = field(default_factory=list)

    @classmethod
    def create(cls, messages: Messages, **fields: Any) -> _Call:
        """A call from `chat`/`stream` arguments, refusing what no provider could answer."""
        if not messages:
            raise InvalidRequest("messages is empty: send at least one message")
        model = fields.get("model")
        if model is not None and not is_valid_model_id(model):
            raise InvalidRequest(model_id_error(model))
        fields["source"] = fields.get("source") or "library"
        return cls(messages=[dict(m) for m in messages], **fields)

    def estimated_tokens(self) -> int:
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        return chars // 4 + (self.max_tokens or 0)


class ChatStream(Iterator[str]):
    """Text deltas of a streamed answer; `.result` holds the ChatResult once exhausted."""

    def __init__(self, gen: Generator[str, None, ChatResult]):
        self._gen = gen
        self.result: ChatResult | None = None

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Broken(Exception):
    """The connection broke while reading a stream (before any token): retryable."""


class _Interrupted(Exception):
    """A stream failed after its first token was delivered."""

    def __init__(self, outcome: Outcome, partial: str):
        self.outcome = outcome
        self.partial = partial


class Gateway:
    """Thread-safe; build one per process and share it."""

    def __init__(
        self,
        registry: Registry,
        *,
        catalog: Any = None,
        limiter: Any = None,
        audit: Any = None,
        timeout: float = 120.0,
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
        self.timeout = timeout
        self.retry_after_cap = retry_after_cap
        self.queue_timeout = queue_timeout
        self.cooldown_seconds = cooldown_seconds
        self._client_factory = client_factory
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._clients: dict[str, tuple[tuple[Any, ...], openai.OpenAI]] = {}
        self._health: dict[str, ProviderHealth] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
        registry: Registry | None = None,
    ) -> Gateway:
        """A gateway wired from GATEHOUSE_* settings: database, secrets, Redis, audit writer.

        Pass `registry` to share one engine and secrets box with the caller (CLI, console).
        """
        from .audit import AuditWriter, default_spill_dir
        from .catalog import Catalog
        from .crypto import SecretBox
        from .db import make_engine
        from .ratelimit import RateLimiter

        if registry is None:
            engine = make_engine(database_url or settings.get("GATEHOUSE_DATABASE_URL", env))
            registry = Registry(engine, SecretBox.from_env(env), env=env)
        engine = registry.engine
        return cls(
            registry,
            catalog=Catalog(engine),
            limiter=RateLimiter(settings.get("GATEHOUSE_REDIS_URL", env)),
            audit=AuditWriter(engine, spill_dir=default_spill_dir(env)),
            timeout=settings.get_float("GATEHOUSE_REQUEST_TIMEOUT", env),
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
            kwargs=openai_kwargs,
        )
        return ChatStream(self._run(call, stream=True))

    def health(self) -> list[ProviderHealth]:
        """Per-provider health in this process, including any active cooldown."""
        now = self._clock()
        with self._lock:
            states = [ProviderHealth(**vars(h)) for h in self._health.values()]
        for h in states:
            if not h.in_cooldown(now):
                h.cooldown_until = h.cooldown_until_wall = None
        return sorted(states, key=lambda h: h.name)

    def close(self) -> None:
        """Flush audit rows and close HTTP clients (also done at process exit)."""
        if self.audit is not None:
            self.audit.close()
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()

    # ---- the attempt loop ------------------------------------------------------------------

    def _run(self, call: _Call, *, stream: bool) -> Generator[str, None, ChatResult]:
        started = self._clock()
        order = self._order(call)
        limited_everywhere = True
        for index, provider in enumerate(order):
            model = call.model if index == 0 and call.model else provider.config.default_model
            result, limited = yield from self._try_provider(call, provider, model, stream, started)
            if result is not None:
                return result
            limited_everywhere = limited_everywhere and limited
        self._finish_failed(call, started)
        if order and limited_everywhere:
            raise RateLimited(
                "Every provider is at its rate limit and no slot opened within "
                f"{self.queue_timeout:g}s (GATEHOUSE_QUEUE_TIMEOUT); retry later or raise the limits.",
                attempts=call.attempts,
                request_id=call.request_id,
            )
        raise AllProvidersFailed(
            _failure_summary(call.attempts), attempts=call.attempts, request_id=call.request_id
        )

    def _order(self, call: _Call) -> list[ResolvedProvider]:
        snapshot = self.registry.snapshot()
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
        now = self._clock()
        with self._lock:
            ready = [p for p in ordered if not self._state(p.config.name).in_cooldown(now)]
        return ready or ordered  # all cooling down: trying beats refusing outright

    def _try_provider(
        self, call: _Call, provider: ResolvedProvider, model: str, stream: bool, started: float
    ) -> Generator[str, None, tuple[ChatResult | None, bool]]:
        """Up to 1 + MAX_RETRIES tries on one provider. Returns (result, rate_limited_here)."""
        name = provider.config.name
        if provider.api_key is None:
            message = (
                provider.key_error
                or f"provider {name!r} has no API key; set one with `gatehouse providers set-key {name}`"
            )
            self._record(
                call, Attempt(name, model, "rejected", error_type="no_key", error_message=message)
            )
            return None, False
        client = self._client(provider)
        wait_s = 0.0
        for retry in range(MAX_RETRIES + 1):
            permit = self._acquire(provider, call)
            if permit is False:
                self._record(
                    call,
                    Attempt(
                        name,
                        model,
                        "rejected",
                        error_type="rate_limit_queue",
                        wait_ms=self.queue_timeout * 1000,
                        error_message=f"no rate-limit slot within {self.queue_timeout:g}s",
                    ),
                )
                return None, True
            wait_ms = wait_s * 1000 + (permit.wait_ms if permit else 0.0)
            t0 = self._clock()
            try:
                if stream:
                    result = yield from self._stream_once(
                        client, call, provider, model, t0, wait_ms, started
                    )
                else:
                    result = self._call_once(client, call, provider, model, t0, wait_ms, started)
            except _Interrupted as cut:
                self._fail_attempt(call, name, model, cut.outcome, t0, wait_ms, status="incomplete")
                self._finish_failed(call, started)
                raise StreamInterrupted(
                    f"The stream from {name} broke after the first token: {cut.outcome.message}. "
                    "The partial answer is kept; send the request again for a full one.",
                    partial_text=cut.partial,
                    attempts=call.attempts,
                    request_id=call.request_id,
                ) from None
            except (openai.APIError, ProviderBodyError, _Broken) as exc:
                if permit:
                    permit.settle(0)  # nothing was generated: give the token estimate back
                outcome = classify(exc)
                self._fail_attempt(call, name, model, outcome, t0, wait_ms)
                decision = decide(outcome, self.retry_after_cap)
                if decision is Decision.FAIL:
                    self._finish_failed(call, started)
                    raise InvalidRequest(
                        f"{name} rejected the request ({outcome.http_status}): {outcome.message}",
                        attempts=call.attempts,
                        request_id=call.request_id,
                    ) from None
                if decision is Decision.FALLBACK or retry == MAX_RETRIES:
                    return None, False
                wait_s = (
                    outcome.retry_after if outcome.retry_after is not None else self._backoff(retry)
                )
                self._sleep(wait_s)
                continue
            finally:
                if permit:
                    permit.release()
            if permit:
                permit.settle((result.input_tokens or 0) + (result.output_tokens or 0))
            return result, False
        return None, False

    def _call_once(
        self,
        client: openai.OpenAI,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        t0: float,
        wait_ms: float,
        started: float,
    ) -> ChatResult:
        response = client.chat.completions.create(**self._request_args(call, model))
        choices = getattr(response, "choices", None)
        if not choices:  # HTTP 200 with a top-level `error` and no choices
            error = (response.model_extra or {}).get("error") or {
                "code": 502,
                "message": "response had no choices",
            }
            raise ProviderBodyError(error)
        choice = choices[0]
        choice_error = (choice.model_extra or {}).get("error")
        if choice_error:  # generation failed part-way: the text is cut short, not an answer
            raise ProviderBodyError(choice_error)
        return self._succeed(
            call,
            provider,
            model,
            t0,
            wait_ms,
            started,
            text=choice.message.content or "",
            response_model=response.model,
            generation_id=response.id,
            usage=response.usage,
            ttft=None,
            finish_reason=choice.finish_reason,
        )

    def _stream_once(
        self,
        client: openai.OpenAI,
        call: _Call,
        provider: ResolvedProvider,
        model: str,
        t0: float,
        wait_ms: float,
        started: float,
    ) -> Generator[str, None, ChatResult]:
        upstream = client.chat.completions.create(**self._request_args(call, model), stream=True)
        parts: list[str] = []
        usage = response_model = generation_id = finish_reason = None
        ttft: float | None = None
        try:
            for chunk in upstream:
                error = (chunk.model_extra or {}).get("error")
                if error:
                    raise ProviderBodyError(error)
                generation_id = generation_id or chunk.id
                response_model = chunk.model or response_model
                usage = chunk.usage or usage
                for choice in chunk.choices:  # the usage chunk may carry [] or an empty delta
                    finish_reason = choice.finish_reason or finish_reason
                    text = choice.delta.content if choice.delta else None
                    if text:
                        if ttft is None:
                            ttft = (self._clock() - t0) * 1000
                        parts.append(text)
                        yield text
        except (openai.APIError, ProviderBodyError) as exc:
            if parts:
                raise _Interrupted(classify(exc), "".join(parts)) from None
            raise
        except GeneratorExit:
            self._record(
                call,
                Attempt(
                    provider.config.name,
                    model,
                    "incomplete",
                    error_type="cancelled",
                    latency_ms=(self._clock() - t0) * 1000,
                    wait_ms=wait_ms,
                    error_message="the caller stopped reading the stream",
                ),
            )
            raise
        except Exception as exc:  # a cut connection surfaces as an httpx2 error mid-iteration
            outcome = classify(exc)
            if parts:
                raise _Interrupted(outcome, "".join(parts)) from None
            raise _Broken(f"the stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            upstream.close()
        return self._succeed(
            call,
            provider,
            model,
            t0,
            wait_ms,
            started,
            text="".join(parts),
            response_model=response_model,
            generation_id=generation_id,
            usage=usage,
            ttft=ttft,
            finish_reason=finish_reason,
        )

    # ---- helpers ---------------------------------------------------------------------------

    def _request_args(self, call: _Call, model: str) -> dict[str, Any]:
        kwargs = dict(call.kwargs)
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
        started: float,
        *,
        text: str,
        response_model: str | None,
        generation_id: str | None,
        usage: Any,
        ttft: float | None,
        finish_reason: str | None,
    ) -> ChatResult:
        now = self._clock()
        used = response_model or model
        tokens = _usage_numbers(usage)
        cost, cost_source = self._cost(used, usage, tokens)
        attempt = Attempt(
            provider.config.name,
            model,
            "ok",
            http_status=200,
            latency_ms=(now - t0) * 1000,
            wait_ms=wait_ms,
        )
        result = ChatResult(
            text=text,
            provider=provider.config.name,
            model=used,
            request_id=call.request_id,
            generation_id=generation_id,
            cost_usd=cost,
            cost_source=cost_source,
            latency_ms=(now - started) * 1000,
            ttft_ms=ttft,
            finish_reason=finish_reason,
            attempts=[*call.attempts, attempt],
            **tokens,
        )
        self._record(call, attempt, result=result)
        self._mark(provider.config.name, ok=True)
        self._log_completion(call, result, "ok")
        return result

    def _cost(
        self, model: str, usage: Any, tokens: dict[str, int | None]
    ) -> tuple[float | None, str]:
        reported = getattr(usage, "cost", None) if usage is not None else None
        if isinstance(reported, int | float):
            return float(reported), "provider"
        if self.catalog is not None and tokens["input_tokens"] is not None:
            estimate = self.catalog.estimate_cost(
                model,
                tokens["input_tokens"] or 0,
                tokens["output_tokens"] or 0,
                tokens["cached_tokens"] or 0,
            )
            if estimate is not None:
                return estimate, "estimated"
        return None, "unknown"

    def _fail_attempt(
        self,
        call: _Call,
        name: str,
        model: str,
        outcome: Outcome,
        t0: float,
        wait_ms: float,
        status: str = "error",
    ) -> None:
        attempt = Attempt(
            name,
            model,
            status,
            http_status=outcome.http_status,
            error_type=outcome.error_type,
            latency_ms=(self._clock() - t0) * 1000,
            wait_ms=wait_ms,
            error_message=outcome.message,
        )
        self._record(call, attempt)
        if outcome.decision is not Decision.FAIL:
            self._mark(name, ok=False, error=outcome.message)

    def _record(self, call: _Call, attempt: Attempt, result: ChatResult | None = None) -> None:
        """Keep the attempt on the call and hand its audit row to the background writer."""
        if result is None:
            call.attempts.append(attempt)
        if self.audit is None:
            return
        row = {
            "request_id": call.request_id,
            "attempt": len(call.attempts) + (1 if result else 0),
            "created_at": datetime.now(UTC),
            "provider": attempt.provider,
            "model": attempt.model,
            "model_used": result.model if result else None,
            "generation_id": result.generation_id if result else None,
            "input_tokens": result.input_tokens if result else None,
            "output_tokens": result.output_tokens if result else None,
            "cached_tokens": result.cached_tokens if result else None,
            "reasoning_tokens": result.reasoning_tokens if result else None,
            "cost_usd": result.cost_usd if result else None,
            "cost_source": result.cost_source if result else "unknown",
            "latency_ms": round(attempt.latency_ms, 2),
            "ttft_ms": round(result.ttft_ms, 2) if result and result.ttft_ms is not None else None,
            "status": attempt.status,
            "http_status": attempt.http_status,
            "error_type": attempt.error_type,
            "error_message": attempt.error_message,
            "workflow_id": call.workflow_id,
            "trace_id": call.trace_id,
            "source": call.source,
            "actor": call.actor,
        }
        self.audit.submit(row)

    def _finish_failed(self, call: _Call, started: float) -> None:
        last = call.attempts[-1] if call.attempts else None
        self._log_completion(
            call,
            None,
            "error",
            provider=last.provider if last else None,
            model=last.model if last else call.model,
            latency_ms=(self._clock() - started) * 1000,
        )

    def _log_completion(
        self, call: _Call, result: ChatResult | None, status: str, **fallback: Any
    ) -> None:
        fields = {
            "provider": result.provider if result else fallback.get("provider"),
            "model": result.model if result else fallback.get("model"),
            "input_tokens": result.input_tokens if result else None,
            "output_tokens": result.output_tokens if result else None,
            "latency_ms": round(
                result.latency_ms if result else fallback.get("latency_ms", 0.0), 2
            ),
            "workflow_id": call.workflow_id,
            "trace_id": call.trace_id,
            "cost_usd": result.cost_usd if result else None,
            "status": status,
            "attempts": len(result.attempts) if result else len(call.attempts),
            "request_id": call.request_id,
        }
        level = logging.INFO if result else logging.WARNING
        log.log(level, "LLM request completed", extra={"fields": fields})

    def _acquire(self, provider: ResolvedProvider, call: _Call) -> Permit | None | bool:
        """A permit, None when there is no limiter, or False when no slot opened in time."""
        if self.limiter is None:
            return None
        permit = self.limiter.acquire(
            provider.config.name,
            provider.config.rate_limit,
            call.estimated_tokens(),
            self.queue_timeout,
        )
        return False if permit is None else permit

    def _client(self, provider: ResolvedProvider) -> openai.OpenAI:
        config = provider.config
        identity = (
            config.base_url,
            tuple(sorted(config.headers.items())),
            provider.api_key,
            self.timeout,
        )
        cached = self._clients.get(config.name)
        if cached is not None and cached[0] == identity:
            return cached[1]
        with self._lock:
            cached = self._clients.get(config.name)
            if cached is not None and cached[0] == identity:
                return cached[1]
            client = self._client_factory(provider, self.timeout)
            if cached is not None:
                cached[1].close()  # the config or key changed: drop the old connection pool
            self._clients[config.name] = (identity, client)
            return client

    def _backoff(self, retry: int) -> float:
        return backoff_seconds(retry, self._rand) if self._rand else backoff_seconds(retry)

    def _state(self, name: str) -> ProviderHealth:
        state = self._health.get(name)
        if state is None:
            state = self._health[name] = ProviderHealth(name)
        return state

    def _mark(self, name: str, *, ok: bool, error: str | None = None) -> None:
        """Track consecutive failures; 5 within 60 s put the provider in cooldown."""
        now = self._clock()
        with self._lock:
            state = self._state(name)
            if ok:
                state.consecutive_failures = 0
                state.first_failure_at = None
                state.last_success_at = datetime.now(UTC)
                return
            if (
                state.first_failure_at is None
                or now - state.first_failure_at > COOLDOWN_WINDOW_SECONDS
            ):
                state.consecutive_failures = 0
                state.first_failure_at = now
            state.consecutive_failures += 1
            state.last_failure_at = datetime.now(UTC)
            state.last_error = error
            if state.consecutive_failures >= COOLDOWN_FAILURES:
                state.cooldown_until = now + self.cooldown_seconds
                state.cooldown_until_wall = datetime.fromtimestamp(
                    time.time() + self.cooldown_seconds, UTC
                )
                state.consecutive_failures = 0
                state.first_failure_at = None
                log.warning(
                    "provider cooling down",
                    extra={
                        "fields": {
                            "provider": name,
                            "seconds": self.cooldown_seconds,
                            "error": error,
                        }
                    },
                )


def _usage_numbers(usage: Any) -> dict[str, int | None]:
    if usage is None:
        return {
            "input_tokens": None,
            "output_tokens": None,
            "cached_tokens": None,
            "reasoning_tokens": None,
        }
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cached_tokens": getattr(prompt_details, "cached_tokens", None),
        "reasoning_tokens": getattr(completion_details, "reasoning_tokens", None),
    }


def _failure_summary(attempts: list[Attempt]) -> str:
    if not attempts:
        return "No provider could be tried (all are disabled or cooling down)."
    lines = []
    for a in attempts:
        status = f"HTTP {a.http_status}" if a.http_status else a.error_type or a.status
        lines.append(f"{a.provider} ({a.model}): {status}: {a.error_message or a.error_type}")
    hint = HINTS.get(attempts[-1].error_type or "")
    return "All providers failed. " + "; ".join(lines) + (f". Next step: {hint}." if hint else "")
