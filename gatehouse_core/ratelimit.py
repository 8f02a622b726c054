"""Per-provider rate limits: requests per minute, tokens per minute, concurrent requests.

Built on the `limits` library; this module only picks strategies, waits in line and keeps the
storage working:

- requests/minute: the moving window (exact; one stored entry per request).
- tokens/minute: the sliding-window counter. This departs from the issue's "moving window" on
  purpose: the moving window stores one entry per unit of cost, i.e. one per token (thousands per
  call, millions of Redis list entries for a 4M tpm limit); the counter keeps two numbers per
  window and approximates the moving window by weighting the previous window.
- concurrency: per process, a resizable slot count per provider.

Storage is memory by default, or Redis (`GATEHOUSE_REDIS_URL`) so every process shares one budget
(keys `<namespace>:<provider>/requests/...`). When Redis stops answering, limits fall back to this
process's memory with one warning, and Redis is tried again every `REDIS_RETRY_SECONDS`.
Counts live in keys that include the limit's amount, so changing a limit starts a fresh window.
On Redis a call costs one round trip: the request and token hits go in one pipeline (`limits`'
own scripts, see `_try_pipelined`), and a token refund after the response is summed with others
and sent by a background thread (`_Corrections`; extra tokens are counted at once) — issue 13
measured four round trips per call, on the caller's thread, as most of the limiter's cost.

Every window is kept `WINDOW_MARGIN_SECONDS` longer than its nominal minute (61 s for "per
minute"), through `limits`' own items (`RateLimitItemPerSecond(n, 61)`): the provider counts
arrivals, not our admissions, and a request reaches it some time after its slot was taken. With an
exact 60 s window, a burst that arrives late and the next burst admitted exactly 60 s after the
first slots land in one strict 60 s window at the provider (issue 13 measured 131 arrivals at 120
rpm). With the margin, any delay up to a second between admission and arrival stays in the limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.storage.base import TimestampedSlidingWindow
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from .errors import ConfigError
from .providers import RateLimit

log = logging.getLogger("gatehouse.ratelimit")

REDIS_RETRY_SECONDS = 30.0
# Connect/read timeout for Redis, tried twice (redis-py's default of 3 retries with backoff would
# stall a call ~12 s on a hung server): a hung server costs one call about 1 s per retry period.
REDIS_TIMEOUT_SECONDS = 0.5
# Shortest sleep between tries, so a reset time that is already past cannot spin the loop.
MIN_WAIT_SECONDS = 0.005
# A Redis window that our own charge opened seems to start up to this long after we noted the
# charge (TTLs are whole milliseconds, read one round trip later).
CHARGE_SLACK_SECONDS = 0.005
REQUESTS, TOKENS = "requests", "tokens"
# A token refund on Redis in one round trip (instead of reading the window, then writing):
# refund only while the charge still sits in the current window, and never below zero.
# KEYS[1] the current window's key; ARGV refund, client now, expiry, latest window start.
REFUND_SCRIPT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
local refund = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < refund then return 0 end
local window_start = tonumber(ARGV[2]) + ttl / 1000 - 2 * tonumber(ARGV[3])
if window_start > tonumber(ARGV[4]) then return 0 end
redis.call('DECRBY', KEYS[1], refund)
return refund
"""
# Redis token corrections (Permit.settle) are applied off the caller's thread, summed per window
# key, at most this long after the call (see `_Corrections`).
CORRECTION_INTERVAL_SECONDS = 0.05
# After a token limit refused a request, both hits go one after the other (not in one pipeline)
# for this long: a pipelined request entry cannot be taken back when the token hit refuses.
TOKEN_PRESSURE_SECONDS = 10.0
# How much longer than its nominal length every window is kept (see the module docstring).
WINDOW_MARGIN_SECONDS = 1
# How often memory storage drops expired entries (they are ignored on read in between anyway).
MEMORY_SWEEP_SECONDS = 1.0


class Permit:
    """Leave to send one request: settle the token estimate afterwards, then release."""

    __slots__ = ("wait_ms", "_limiter", "_item", "_backend", "_charged", "_charged_at", "_slots")

    def __init__(
        self,
        wait_ms: float = 0.0,
        *,
        limiter: RateLimiter | None = None,
        tokens_item: RateLimitItem | None = None,
        backend: _Backend | None = None,
        charged: int = 0,
        charged_at: float = 0.0,
        slots: _Slots | None = None,
    ):
        self.wait_ms = wait_ms  # time spent waiting in line
        self._limiter = limiter
        self._item = tokens_item
        self._backend = backend
        self._charged = charged
        self._charged_at = charged_at  # wall time, the frame `limits` keeps its windows in
        self._slots = slots

    def settle(self, actual_tokens: int) -> None:
        """Correct the token estimate with real usage: more is consumed, less is given back
        while the estimate still sits in the current window (see `RateLimiter._adjust_tokens`)."""
        if self._item is None or self._limiter is None or self._backend is None:
            return
        change = actual_tokens - self._charged
        if not change:
            return
        if self._backend.kind == "redis" and change < 0:
            # A refund can wait (meanwhile the window counts too much, never too little): off
            # the caller's thread, counted as applied. Extra tokens are counted at once, or
            # the calls admitted in between would pass the limit at the provider.
            self._limiter._corrections.add(self._backend, self._item, -change, self._charged_at)
            self._charged += change
        else:
            self._charged += self._limiter._adjust_tokens(
                self._backend, self._item, change, self._charged_at
            )

    def release(self) -> None:
        """Free the concurrency slot; calling it again does nothing."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.give()

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


_UNLIMITED = Permit()  # shared by every provider without limits: nothing to settle or release


class RateLimiter:
    """Per-provider limits shared by every thread of a process (and every process via Redis)."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str = "gatehouse",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window_seconds: int = 60,
        window_margin_seconds: int = WINDOW_MARGIN_SECONDS,
    ):
        """`window_seconds` is the length of the "minute" (tests shorten it to watch it move);
        each window is kept `window_margin_seconds` longer, so that arrivals at the provider
        stay within the limit in every strict window of the nominal length."""
        if window_seconds < 1 or window_margin_seconds < 0:
            raise ValueError("window_seconds must be >= 1 and window_margin_seconds >= 0")
        self._clock = clock
        self._sleep = sleep
        self._window = window_seconds + window_margin_seconds
        self._lock = threading.Lock()
        self._providers: dict[str, _ProviderLimits] = {}
        self._memory = _Backend("memory", _SweptMemoryStorage())
        self._redis: _Backend | None = None
        self._redis_down = False
        self._retry_at = 0.0
        self._redis_shown = _redacted(redis_url) if redis_url else ""
        self._corrections = _Corrections(self)
        if redis_url:
            self._redis = _Backend("redis", _redis_storage(redis_url, namespace))
            if not self._redis.storage.check():
                self._fall_back("it did not answer PING")

    @property
    def storage_kind(self) -> str:
        """Which budget is in use: "redis" (shared by processes) or "memory" (this process)."""
        return "redis" if self._redis is not None and not self._redis_down else "memory"

    @property
    def redis_fallback(self) -> bool:
        """True while Redis is configured but unreachable and limits are per process."""
        return self._redis is not None and self._redis_down

    def flush(self) -> None:
        """Apply the token corrections not yet sent to Redis (tests; `close`)."""
        self._corrections.flush()

    def close(self) -> None:
        """Apply pending corrections and stop their thread (a later settle starts it again)."""
        self._corrections.stop()

    def acquire(
        self, provider: str, limit: RateLimit, tokens: int, timeout: float
    ) -> Permit | None:
        """Wait in line (at most `timeout` seconds; 0 = try once) until requests/minute,
        tokens/minute and concurrency all allow the request; None if no slot opened in time.
        `tokens` is the caller's estimate (see `_Call.estimated_tokens` in gateway.py)."""
        plan = self._providers.get(provider)
        if plan is None or (plan.limit is not limit and plan.limit != limit):
            plan = self._rebuild(provider, limit)
        if plan.free:
            return _UNLIMITED
        if plan.tokens is not None and tokens > plan.tokens.amount:
            return None  # can never fit in a window: fall back at once instead of waiting
        start = self._clock()
        slots = plan.slots
        if slots is not None and not slots.take(timeout):
            return None
        taken = None
        try:
            taken = self._wait_in_line(plan, tokens, start + timeout)
        finally:
            if taken is None and slots is not None:
                slots.give()
        if taken is None:
            return None
        backend, charged_at = taken
        return Permit(
            (self._clock() - start) * 1000,
            limiter=self,
            tokens_item=plan.tokens,
            backend=backend,
            charged=max(tokens, 0) if plan.tokens is not None else 0,
            charged_at=charged_at,
            slots=slots,
        )

    def _rebuild(self, provider: str, limit: RateLimit) -> _ProviderLimits:
        with self._lock:
            old = self._providers.get(provider)
            if old is not None and old.limit == limit:
                return old
            new = _ProviderLimits(provider, limit, self._window, old.slots if old else None)
            self._providers[provider] = new
            return new

    def _wait_in_line(
        self, plan: _ProviderLimits, tokens: int, deadline: float
    ) -> tuple[_Backend, float] | None:
        """Try, sleep until the earliest moment the refusing limit could pass, try again."""
        for _ in range(int(max(deadline - self._clock(), 0) / MIN_WAIT_SECONDS) + 2):
            backend = self._backend()
            try:
                wait, charged_at = self._try_once(backend, plan, tokens)
            except StorageError as exc:
                self._fall_back(str(exc.storage_error))
                continue  # the same call goes on with memory
            except RedisError as exc:  # from the pipelined hits, which bypass `limits`' wrapper
                self._fall_back(str(exc))
                continue
            if wait == 0.0:
                return backend, charged_at
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            self._sleep(min(wait, remaining))
        return None

    def _try_once(
        self, backend: _Backend, plan: _ProviderLimits, tokens: int
    ) -> tuple[float, float]:
        """(0.0, when the tokens were charged) if every limit took the request,
        else (seconds until it could pass, 0.0)."""
        tokens_item, requests_item = plan.tokens, plan.requests
        charge_tokens = tokens_item is not None and tokens > 0
        if (
            charge_tokens
            and requests_item is not None
            and backend.kind == "redis"
            and self._clock() >= plan.tokens_pressed_until
        ):
            return self._try_pipelined(backend, plan, tokens)
        # Tokens first: their charge can be given back if the request limit then says no,
        # while a moving-window entry cannot be removed.
        if charge_tokens and not backend.tokens.hit(tokens_item, TOKENS, cost=tokens):
            plan.tokens_pressed_until = self._clock() + TOKEN_PRESSURE_SECONDS
            return _tokens_wait(backend, tokens_item, tokens), 0.0
        charged_at = time.time()
        if requests_item is not None and not backend.requests.hit(requests_item, REQUESTS):
            if charge_tokens:
                self._adjust_tokens(backend, tokens_item, -tokens, charged_at)
            return _requests_wait(backend, requests_item), 0.0
        return 0.0, charged_at

    def _try_pipelined(
        self, backend: _Backend, plan: _ProviderLimits, tokens: int
    ) -> tuple[float, float]:
        """Both hits in one Redis round trip: `limits`' own two scripts, with the keys and
        arguments its `hit` methods would send, in one pipeline (by SHA, so no SCRIPT EXISTS
        trip per call; a script Redis lost is sent again). Used while no token limit has refused
        lately: if the token hit refuses here, the request entry already taken stays (a moving
        window entry cannot be removed), so each process wastes at most one request slot as
        token pressure begins, and then takes the sequential path."""
        tokens_item, requests_item = plan.tokens, plan.requests
        assert tokens_item is not None and requests_item is not None
        storage: Any = backend.storage
        token_key = tokens_item.key_for(TOKENS)
        token_keys = [
            storage.prefixed_key(storage._previous_window_key(token_key)),
            storage.prefixed_key(storage._current_window_key(token_key)),
        ]
        token_args = [tokens_item.amount, tokens_item.get_expiry(), tokens]
        request_keys = [storage.prefixed_key(requests_item.key_for(REQUESTS))]
        charged_at = time.time()
        request_args = [charged_at, requests_item.amount, requests_item.get_expiry(), 1]
        token_script, request_script = (
            storage.lua_acquire_sliding_window,
            storage.lua_acquire_moving_window,
        )
        pipe = storage.get_connection().pipeline(transaction=False)
        pipe.evalsha(token_script.sha, 2, *token_keys, *token_args)
        pipe.evalsha(request_script.sha, 1, *request_keys, *request_args)
        got_tokens, got_request = pipe.execute(raise_on_error=False)
        if isinstance(got_tokens, NoScriptError):
            got_tokens = token_script(token_keys, token_args)
        if isinstance(got_request, NoScriptError):
            got_request = request_script(request_keys, request_args)
        for got in (got_tokens, got_request):
            if isinstance(got, Exception):
                raise got
        if not got_tokens:
            plan.tokens_pressed_until = self._clock() + TOKEN_PRESSURE_SECONDS
            return _tokens_wait(backend, tokens_item, tokens), 0.0
        if not got_request:
            self._adjust_tokens(backend, tokens_item, -tokens, charged_at)
            return _requests_wait(backend, requests_item), 0.0
        return 0.0, charged_at

    def _adjust_tokens(
        self, backend: _Backend, item: RateLimitItem, change: int, charged_at: float
    ) -> int:
        """Add `change` tokens to the current window; returns how many were applied.

        More tokens are always counted (they were used). A refund is given only while the
        original charge still sits in the current window, and never below zero: once the window
        has moved on, the charge is weighted into the previous window and over-estimates are
        not refunded.
        """
        if backend.kind == "redis" and self._redis_down:
            return 0
        storage, expiry = backend.storage, item.get_expiry()
        key = item.key_for(TOKENS)
        try:
            if change > 0:
                storage.incr(_current_window_key(storage, key, expiry), 2 * expiry, change)
                return change
            if backend.refund is not None:
                return -self._redis_refund(backend, key, expiry, -change, charged_at)
            _, _, current, current_ttl = storage.get_sliding_window(key, expiry)
            window_start = time.time() + current_ttl - 2 * expiry
            if window_start > charged_at + CHARGE_SLACK_SECONDS or current < -change:
                return 0
            current_key = _current_window_key(storage, key, expiry)
            left = storage.incr(current_key, 2 * expiry, change)
            if left < 0:  # another process shifted the window in between: undo the overshoot
                storage.incr(current_key, 2 * expiry, -left)
                return change - left
            return change
        except StorageError as exc:
            self._fall_back(str(exc.storage_error))
            return 0

    def _redis_refund(
        self, backend: _Backend, key: str, expiry: int, refund: int, charged_at: float
    ) -> int:
        storage = backend.storage
        current_key = storage.prefixed_key(storage._current_window_key(key))  # type: ignore[attr-defined]
        args = [refund, time.time(), expiry, charged_at + CHARGE_SLACK_SECONDS]
        try:
            return int(backend.refund(keys=[current_key], args=args))  # type: ignore[misc]
        except RedisError as exc:
            self._fall_back(str(exc))
            return 0

    def _backend(self) -> _Backend:
        redis = self._redis
        if redis is None:
            return self._memory
        if self._redis_down and not self._redis_is_back():
            return self._memory
        return redis

    def _redis_is_back(self) -> bool:
        with self._lock:  # one thread pings per retry period; the others stay on memory
            if self._clock() < self._retry_at:
                return False
            self._retry_at = self._clock() + REDIS_RETRY_SECONDS
        assert self._redis is not None
        if not self._redis.storage.check():
            return False
        self._redis_down = False
        log.info("Redis at %s answers again; rate limits are shared again", self._redis_shown)
        return True

    def _fall_back(self, reason: str) -> None:
        with self._lock:
            if self._redis_down:
                return
            self._redis_down = True
            self._retry_at = self._clock() + REDIS_RETRY_SECONDS
        log.warning(
            "Redis at %s is unreachable (%s); rate limits are kept per process in memory "
            "until it answers again (retried every %g s)",
            self._redis_shown,
            reason,
            REDIS_RETRY_SECONDS,
        )


class _Corrections:
    """Redis token refunds, applied by one background thread instead of on the caller's.

    `Permit.settle` runs right after every response, on the thread that made the call; on Redis
    a correction is a round trip (issue 13's profile: most of the limiter's cost per call). A
    refund (the estimate was too high) is added to a per-window-key sum and sent within
    CORRECTION_INTERVAL_SECONDS as one refund script call carrying the OLDEST charge time of the
    batch, so a batch that straddles a window shift refunds nothing (tokens over-counted, never
    under-counted). Extra tokens are never deferred (see `Permit.settle`). Pending refunds are
    applied by `flush()`/`stop()` (Gateway.close); a process killed in between loses at most one
    interval's refunds (over-counted tokens)."""

    def __init__(self, limiter: RateLimiter):
        self._limiter = limiter
        self._lock = threading.Lock()
        # (backend kind, window key, expiry) → [backend, item, tokens to refund, oldest charge]
        self._pending: dict[tuple[str, str, int], list[Any]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, backend: _Backend, item: RateLimitItem, refund: int, charged_at: float) -> None:
        key = (backend.kind, item.key_for(TOKENS), item.get_expiry())
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                entry = self._pending[key] = [backend, item, 0, charged_at]
            entry[2] += refund
            entry[3] = min(entry[3], charged_at)
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._run, name="gatehouse-ratelimit-corrections", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        for backend, item, refund, oldest in batch.values():
            self._limiter._adjust_tokens(backend, item, -refund, oldest)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(CORRECTION_INTERVAL_SECONDS)
            try:
                self.flush()
            except Exception:  # a failed batch is dropped (over-counting is the safe side)
                log.warning("applying rate-limit token corrections failed", exc_info=True)


class _SweptMemoryStorage(MemoryStorage):
    """`limits`' MemoryStorage without a new thread per call.

    It schedules its clean-up with a fresh `threading.Timer` (10 ms) whenever the previous one
    has finished, i.e. on almost every hit at ordinary request rates (issue 13: 2,636 threads
    started in 3,000 calls). Counters are checked for expiry when read, so the clean-up only
    frees memory: here it runs inline, at most once per MEMORY_SWEEP_SECONDS."""

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the name-mangled private hook
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + MEMORY_SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class _Backend:
    """One storage, the two strategies on it, and (Redis) the one-trip refund script."""

    __slots__ = ("kind", "storage", "requests", "tokens", "refund")

    def __init__(self, kind: str, storage: Storage):
        self.kind = kind
        self.storage = storage
        self.requests = MovingWindowRateLimiter(storage)
        self.tokens = SlidingWindowCounterRateLimiter(storage)
        self.refund: Callable[..., int] | None = None
        if kind == "redis":  # registering sends nothing; the script loads on first use
            self.refund = storage.get_connection().register_script(REFUND_SCRIPT)  # type: ignore[attr-defined]


class _ProviderLimits:
    """The limit items of one provider, built once per `RateLimit` value."""

    __slots__ = ("limit", "requests", "tokens", "slots", "free", "tokens_pressed_until")

    def __init__(self, provider: str, limit: RateLimit, window: int, slots: _Slots | None):
        self.limit = limit
        self.tokens_pressed_until = 0.0  # the limiter's clock; see TOKEN_PRESSURE_SECONDS
        self.requests = _item(limit.requests_per_minute, window, provider)
        self.tokens = _item(limit.tokens_per_minute, window, provider)
        self.slots = None
        if limit.concurrent_requests is not None:
            # Keep the slot count across a config change so requests in flight still count.
            self.slots = slots or _Slots(limit.concurrent_requests)
            self.slots.resize(limit.concurrent_requests)
        self.free = self.requests is None and self.tokens is None and self.slots is None


class _Slots:
    """A semaphore whose size can change while permits are out."""

    def __init__(self, size: int):
        self.size = size
        self.in_use = 0
        self._cond = threading.Condition()

    def take(self, timeout: float) -> bool:
        with self._cond:
            if not self._cond.wait_for(lambda: self.in_use < self.size, max(timeout, 0)):
                return False
            self.in_use += 1
            return True

    def give(self) -> None:
        with self._cond:
            self.in_use -= 1
            self._cond.notify()

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = size
            self._cond.notify_all()


def _item(amount: int | None, window: int, provider: str) -> RateLimitItem | None:
    return None if amount is None else RateLimitItemPerSecond(amount, window, namespace=provider)


def _requests_wait(backend: _Backend, item: RateLimitItem) -> float:
    # The moving window's reset time is when its oldest entry leaves; if a slot has freed up
    # since the refused hit, try again right away.
    stats = backend.requests.get_window_stats(item, REQUESTS)
    if stats.remaining > 0:
        return MIN_WAIT_SECONDS
    return max(stats.reset_time - time.time(), MIN_WAIT_SECONDS)


def _tokens_wait(backend: _Backend, item: RateLimitItem, tokens: int) -> float:
    # get_window_stats' reset time is when ONE token frees up; a request needs `tokens`, so the
    # wait is worked out from the same window numbers.
    window = backend.storage.get_sliding_window(item.key_for(TOKENS), item.get_expiry())
    return max(
        tokens_wait_seconds(window, item.amount, tokens, item.get_expiry()), MIN_WAIT_SECONDS
    )


def tokens_wait_seconds(
    window: tuple[int, float, int, float], limit: int, tokens: int, expiry: float
) -> float:
    """Seconds until a sliding-window counter could take `tokens` more, if nobody else hits it.

    `window` is the storage's (previous_count, previous_ttl, current_count, current_ttl): the
    counter weighs the previous window by previous_ttl / expiry, and the current window becomes
    the previous one after current_ttl - expiry seconds.
    """
    previous, previous_ttl, current, current_ttl = window
    if current + tokens <= limit:
        if previous == 0:
            return 0.0
        return max(0.0, previous_ttl - (limit - tokens - current) * expiry / previous)
    shift_in = max(0.0, current_ttl - expiry)
    return shift_in + max(0.0, expiry - (limit - tokens) * expiry / current)


def _current_window_key(storage: Storage, key: str, expiry: int) -> str:
    """The sliding-window counter's key for the current window, as the strategy writes it."""
    if isinstance(storage, TimestampedSlidingWindow):  # memory: one key per window number
        return storage.sliding_window_keys(key, expiry, time.time())[1]
    return storage._current_window_key(key)  # type: ignore[attr-defined]  # RedisStorage: "{key}"


def _redis_storage(url: str, namespace: str) -> Storage:
    try:
        return storage_from_string(
            url,
            key_prefix=namespace,
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),  # one quick retry heals a stale pooled connection
        )
    except ConfigurationError:
        raise ConfigError(
            f"GATEHOUSE_REDIS_URL {_redacted(url)!r} is not a Redis URL; "
            "use redis://host:6379/0 or unset it for per-process limits"
        ) from None


def _redacted(url: str) -> str:
    """The URL without credentials, for log lines."""
    parts = urlparse(url)
    host = (parts.netloc.rpartition("@")[2]) or parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"
