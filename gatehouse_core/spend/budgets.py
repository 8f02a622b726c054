"""Monthly USD budgets enforced before the money is spent: reserve → settle → release.

`Budgets` is an admitter with the rate limiter's shape (see `ratelimit.Permit`): the gateway calls
`reserve(CallInfo)` before an upstream request, which raises `BudgetExceeded` when month-to-date
spend plus open reservations plus this call's worst case would pass a `block` budget; afterwards
`Reservation.settle(cost)` replaces the reservation with the real cost, or `release()` drops it
for a failed attempt. `alert` budgets are tracked the same way and never refuse.
The rules themselves (scopes, validation, the `budgets` table, months) are in `budget_rules.py`;
API tokens' monthly budgets are rules too (scope "token", from `api_tokens`, see tokens.py).

Where the figures live:
- month-to-date spend recorded in the database: `llm_usage_hourly`, read at most every
  `refresh_seconds` (with the budget rules) — never on every call;
- with `GATEHOUSE_REDIS_URL`: settled spend (integer micro-dollars, one key per budget and month,
  expiring 40 days after the last settle) and open reservations (a sorted set scored by expiry, so a
  killed process's reservations lapse after `reservation_ttl`), checked and taken in one Lua
  script, so every process shares one figure. The spend used is max(Redis, database): a flushed
  Redis never forgets what the database recorded, and nothing is counted twice;
- without Redis (or while it is unreachable): this process's reservations and settled costs on top
  of the database figure. Other processes' spend is seen once their audit rows reach the rollup
  and the next refresh reads it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from ..errors import BudgetExceeded, ConfigError
from .budget_rules import (
    BudgetRule,
    CallInfo,
    budget_timezone,
    month_start,
    month_to_date_spend,
    next_month_start,
    rules_in_force,
    usd,
)

if TYPE_CHECKING:
    from ..catalog import Catalog

log = logging.getLogger("gatehouse.budgets")

# Output tokens reserved for a call that does not set max_tokens (a long answer of most models).
DEFAULT_OUTPUT_TOKENS = 4096
# Reserved for a call whose model has no known price: more than almost any single chat call
# costs, so an unpriced model cannot slip past a budget; settle() then counts the real cost.
UNKNOWN_PRICE_RESERVE_USD = 0.50
REFRESH_SECONDS = 5.0  # longest age of the database figure and the budget rules
# Once a `block` budget's recorded spend passes this fraction, the figure is read every
# NEAR_REFRESH_SECONDS instead: other processes' spend shows up sooner where it matters.
NEAR_LIMIT_FRACTION = 0.8
NEAR_REFRESH_SECONDS = 1.0
# A cost settled this long before a read is in the rollup by then (the audit writer flushes every
# 0.2 s); younger ones stay counted locally, so at worst they count twice for about a second.
ROLLUP_LAG_SECONDS = 1.0
RESERVATION_TTL_SECONDS = 900.0  # a reservation nobody settles lapses after this (killed process)
REDIS_RETRY_SECONDS = 30.0
REDIS_TIMEOUT_SECONDS = 0.5
MICRO = 1_000_000  # Redis keeps integer micro-dollars: INCRBY is exact, floats would drift


# ---- reservations -------------------------------------------------------------------------


class Reservation:
    """The worst-case cost of one attempt, held against every budget that applies to it."""

    __slots__ = ("amount_usd", "_owner", "_rules", "_member", "_keys", "_done")

    def __init__(
        self,
        amount_usd: float,
        owner: Budgets | None = None,
        rules: tuple[BudgetRule, ...] = (),
        member: str = "",
        keys: tuple[str, ...] = (),
    ):
        self.amount_usd = amount_usd
        self._owner = owner
        self._rules = rules
        self._member = member  # the Redis sorted-set member ("" when held in memory)
        self._keys = keys  # Redis (spent, held) key pairs of the month it was taken in
        self._done = not rules

    @property
    def _redis(self) -> bool:
        return bool(self._keys)

    def settle(self, actual_cost_usd: float | None) -> None:
        """Replace the reservation with the real cost (None: unknown, counted as 0 — the gateway
        passes OpenRouter's `usage.cost` or its catalog estimate). Later calls do nothing."""
        if self._done or self._owner is None:
            return
        self._done = True
        self._owner._settle(self, max(float(actual_cost_usd or 0.0), 0.0))

    def release(self) -> None:
        """Drop the reservation of a failed attempt; after settle() or a release it does nothing."""
        if self._done or self._owner is None:
            return
        self._done = True
        self._owner._release(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@dataclass
class _Snapshot:
    rules: tuple[BudgetRule, ...]
    spent: dict[str, float]  # database figure per rule key
    month_start: datetime
    next_month: datetime
    loaded_at: float
    near_limit: bool = False  # some block budget's recorded spend is past NEAR_LIMIT_FRACTION
    read_at: datetime | None = None  # wall clock of the read (see `include`)


_RESERVE = """
local now, expires, member = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local amount, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = #KEYS / 2
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
  local limit = tonumber(ARGV[4 + 2 * i])
  if limit >= 0 then
    local spent = math.max(tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0'),
                           tonumber(ARGV[5 + 2 * i]))
    local held = 0
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2 * i], 0, -1)) do
      held = held + tonumber(string.match(m, ':(%d+)$'))
    end
    if spent + held + amount > limit then
      return {i, spent, held}
    end
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[2 * i], expires, member)
  redis.call('EXPIRE', KEYS[2 * i], ttl)
end
return {0, 0, 0}
"""

_SETTLE = """
local member, cost, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #KEYS / 2 do
  redis.call('ZREM', KEYS[2 * i], member)
  redis.call('INCRBY', KEYS[2 * i - 1], cost)
  redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
end
return 1
"""


class Budgets:
    """The budget admitter shared by every thread of a process (and every process via Redis)."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog | None = None,
        redis_url: str | None = None,
        *,
        namespace: str = "gatehouse",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = REFRESH_SECONDS,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
        timezone: ZoneInfo | None = None,
    ):
        """`now` is the wall clock (month boundaries, reservation expiry shared through Redis);
        `clock` times the refreshes. Both are injectable so tests can move time."""
        self.engine = engine
        self.catalog = catalog
        self._clock = clock
        self._now = now
        self._refresh = refresh_seconds
        self._ttl = reservation_ttl
        self._tz = timezone or budget_timezone()
        self._ns = namespace
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._settled: dict[str, float] = {}  # this process's costs not yet in the snapshot
        self._settled_log: deque[tuple[float, tuple[BudgetRule, ...], float]] = deque()
        self._held: dict[str, float] = {}  # this process's open reservations
        self._redis: Any = None
        self._redis_down = False
        self._retry_at = 0.0
        self._scripts: dict[str, Any] = {}
        if redis_url:
            self._connect(redis_url)

    # ---- the admitter ------------------------------------------------------------------

    def worst_case_usd(self, call: CallInfo) -> float:
        """Catalog prices × (prompt estimate + max_tokens or DEFAULT_OUTPUT_TOKENS); an unpriced
        model reserves UNKNOWN_PRICE_RESERVE_USD."""
        output = (
            call.max_tokens if call.max_tokens and call.max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
        )
        cost = None
        if self.catalog is not None:
            cost = self.catalog.estimate_cost(call.model, max(call.prompt_tokens, 0), output)
        return UNKNOWN_PRICE_RESERVE_USD if cost is None else cost

    def reserve(self, call: CallInfo) -> Reservation:
        """Hold the call's worst case against every budget that applies; BudgetExceeded if a
        `block` budget cannot take it (nothing is held then)."""
        snapshot = self._current()
        rules = tuple(r for r in snapshot.rules if r.applies_to(call))
        amount = self.worst_case_usd(call)
        if not rules:
            return Reservation(amount)
        if self._use_redis():
            reservation = self._reserve_redis(snapshot, rules, amount)
            if reservation is not None:
                return reservation
        return self._reserve_memory(snapshot, rules, amount)

    @property
    def storage_kind(self) -> str:
        """Where reservations live: "redis" (every process) or "memory" (this process)."""
        return "redis" if self._redis is not None and not self._redis_down else "memory"

    @property
    def timezone(self) -> ZoneInfo:
        """The zone months begin in."""
        return self._tz

    def rules(self) -> tuple[BudgetRule, ...]:
        return self._current().rules

    def open_reservations(self) -> dict[str, float]:
        """USD held by calls in flight per budget key: every process's with Redis, else ours."""
        snapshot = self._current()
        if self._use_redis():
            try:
                now = self._now().timestamp()
                held = {}
                for rule in snapshot.rules:
                    members = self._redis.zrangebyscore(
                        self._key(snapshot, rule, "held"), now, "+inf"
                    )
                    held[rule.key] = sum(_micro_of(m) for m in members) / MICRO
                return held
            except Exception as exc:  # any Redis failure: report this process's figure
                self._fall_back(exc)
        with self._lock:
            return {r.key: self._held.get(r.key, 0.0) for r in snapshot.rules}

    def spent(self) -> dict[str, float]:
        """Month-to-date spend per budget key as this admitter counts it."""
        snapshot = self._current()
        figures = {r.key: snapshot.spent.get(r.key, 0.0) for r in snapshot.rules}
        if self._use_redis():
            try:
                keys = [self._key(snapshot, r, "spent") for r in snapshot.rules]
                for rule, raw in zip(
                    snapshot.rules, self._redis.mget(keys) if keys else [], strict=True
                ):
                    figures[rule.key] = max(figures[rule.key], int(raw or 0) / MICRO)
                return figures
            except Exception as exc:
                self._fall_back(exc)
        with self._lock:
            return {k: v + self._settled.get(k, 0.0) for k, v in figures.items()}

    def include(self, key: str, created_at: datetime) -> None:
        """Make sure a rule created at `created_at` (a new API token's budget) is in force now,
        not only after the next periodic read: if `key` is not among the rules and they were
        read before it was created, read them again. Once per new rule and process; a rule
        still absent after that read is gone (a revoked token) and costs nothing more."""
        snapshot = self._current()
        if any(r.key == key for r in snapshot.rules):
            return
        if snapshot.read_at is None or snapshot.read_at <= created_at:
            self._load()

    def refresh(self) -> None:
        """Read the rules and the database figure now (e.g. right after changing a budget)."""
        self._load()

    def close(self) -> None:
        """Close the Redis connections. There is no background thread; after a fork the child's
        redis-py pool opens its own connections, and in-memory reservations stay per process."""
        if self._redis is not None:
            self._redis.close()

    # ---- memory ------------------------------------------------------------------------

    def _reserve_memory(
        self, snapshot: _Snapshot, rules: tuple[BudgetRule, ...], amount: float
    ) -> Reservation:
        with self._lock:
            for rule in rules:
                if rule.action != "block":
                    continue
                spent = snapshot.spent.get(rule.key, 0.0) + self._settled.get(rule.key, 0.0)
                held = self._held.get(rule.key, 0.0)
                if spent + held + amount > rule.monthly_usd + 1e-12:
                    raise _refusal(rule, spent, held, amount, snapshot)
            for rule in rules:
                self._held[rule.key] = self._held.get(rule.key, 0.0) + amount
        return Reservation(amount, self, rules)

    def _settle(self, reservation: Reservation, cost: float) -> None:
        if reservation._redis and self._settle_redis(reservation, cost):
            return
        with self._lock:
            for rule in reservation._rules:
                if not reservation._redis:
                    self._held[rule.key] = max(
                        self._held.get(rule.key, 0.0) - reservation.amount_usd, 0.0
                    )
                self._settled[rule.key] = self._settled.get(rule.key, 0.0) + cost
            self._settled_log.append((self._clock(), reservation._rules, cost))

    def _release(self, reservation: Reservation) -> None:
        if reservation._redis:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for held_key in reservation._keys[1::2]:
                    pipe.zrem(held_key, reservation._member)
                pipe.execute()
            except Exception as exc:  # it lapses after the TTL anyway
                self._fall_back(exc)
            return
        with self._lock:
            for rule in reservation._rules:
                self._held[rule.key] = max(
                    self._held.get(rule.key, 0.0) - reservation.amount_usd, 0.0
                )

    # ---- redis -------------------------------------------------------------------------

    def _connect(self, url: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            self._redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                # One quick retry heals a stale pooled connection; redis-py's default retries
                # with backoff would stall a call for seconds on a hung server.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError:
            raise ConfigError(
                "GATEHOUSE_REDIS_URL is not a Redis URL; use redis://host:6379/0 or unset it"
            ) from None
        self._scripts = {
            "reserve": self._redis.register_script(_RESERVE),
            "settle": self._redis.register_script(_SETTLE),
        }

    def _use_redis(self) -> bool:
        if self._redis is None:
            return False
        if not self._redis_down:
            return True
        with self._lock:  # one thread tries again per retry period
            if self._clock() < self._retry_at:
                return False
            self._retry_at = self._clock() + REDIS_RETRY_SECONDS
        try:
            self._redis.ping()
        except Exception:
            return False
        self._redis_down = False
        log.info("Redis answers again; budgets are shared by every process again")
        return True

    def _fall_back(self, exc: BaseException) -> None:
        with self._lock:
            if self._redis_down:
                return
            self._redis_down = True
            self._retry_at = self._clock() + REDIS_RETRY_SECONDS
        log.warning(
            "Redis is unreachable (%s); budgets count this process's reservations on top of the "
            "database figure until it answers again (retried every %g s)",
            type(exc).__name__,
            REDIS_RETRY_SECONDS,
        )

    def _key(self, snapshot: _Snapshot, rule: BudgetRule, part: str) -> str:
        return f"{self._ns}:budget:{snapshot.month_start:%Y%m%dT%H%M}:{rule.key}:{part}"

    def _reserve_redis(
        self, snapshot: _Snapshot, rules: tuple[BudgetRule, ...], amount: float
    ) -> Reservation | None:
        micro = max(round(amount * MICRO), 0)
        member = f"{uuid.uuid4().hex}:{micro}"
        now = self._now().timestamp()
        keys: list[str] = []
        args: list[Any] = [now, now + self._ttl, member, micro, int(self._ttl * 2) + 1]
        for rule in rules:
            keys += [self._key(snapshot, rule, "spent"), self._key(snapshot, rule, "held")]
            limit = round(rule.monthly_usd * MICRO) if rule.action == "block" else -1
            args += [limit, round(snapshot.spent.get(rule.key, 0.0) * MICRO)]
        try:
            index, spent, held = self._scripts["reserve"](keys=keys, args=args)
        except Exception as exc:
            self._fall_back(exc)
            return None
        if index:
            rule = rules[int(index) - 1]
            raise _refusal(rule, int(spent) / MICRO, int(held) / MICRO, amount, snapshot)
        return Reservation(amount, self, rules, member, tuple(keys))

    def _settle_redis(self, reservation: Reservation, cost: float) -> bool:
        # A month key outlives its month, and stops costing memory 40 days after its last use.
        expire = int(self._ttl) + 40 * 86400
        try:
            self._scripts["settle"](
                keys=list(reservation._keys),
                args=[reservation._member, round(cost * MICRO), expire],
            )
            return True
        except Exception as exc:
            self._fall_back(exc)
            return False

    # ---- the periodic read ---------------------------------------------------------------

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            return self._load()
        every = min(self._refresh, NEAR_REFRESH_SECONDS) if snapshot.near_limit else self._refresh
        stale = self._clock() - snapshot.loaded_at >= every
        # Single flight: one thread reads, the others keep using the last figure.
        if (stale or self._now() >= snapshot.next_month) and self._loading.acquire(blocking=False):
            try:
                return self._read(snapshot)
            finally:
                self._loading.release()
        return snapshot

    def _load(self) -> _Snapshot:
        with self._loading:
            return self._read(self._snapshot)

    def _read(self, old: _Snapshot | None) -> _Snapshot:
        now = self._now()
        start, end = month_start(now, self._tz), next_month_start(now, self._tz)
        read_at = self._clock()
        try:
            rules = tuple(rules_in_force(self.engine))
            spent = month_to_date_spend(self.engine, rules, start) if rules else {}
        except Exception as exc:  # the database is down: the last good figure keeps serving
            log.warning(
                "reading budgets failed (%s); using the last figures read", type(exc).__name__
            )
            if old is not None:
                old.loaded_at = self._clock()
                return old
            spent, rules = {}, ()
        near = any(
            r.action == "block" and spent.get(r.key, 0.0) >= NEAR_LIMIT_FRACTION * r.monthly_usd
            for r in rules
        )
        snapshot = _Snapshot(rules, spent, start, end, self._clock(), near, now)
        with self._lock:
            if old is not None and old.month_start != start:
                self._settled.clear()
                self._settled_log.clear()
            log_ = self._settled_log
            while log_ and log_[0][0] <= read_at - ROLLUP_LAG_SECONDS:
                _, rules_, cost = log_.popleft()
                for rule in rules_:
                    self._settled[rule.key] = max(self._settled.get(rule.key, 0.0) - cost, 0.0)
            self._snapshot = snapshot
        return snapshot


def _micro_of(member: bytes | str) -> int:
    text = member.decode() if isinstance(member, bytes) else member
    return int(text.rpartition(":")[2] or 0)


def _refusal(
    rule: BudgetRule, spent: float, held: float, amount: float, snapshot: _Snapshot
) -> BudgetExceeded:
    return BudgetExceeded(
        f"{rule.label[0].upper()}{rule.label[1:]} ({usd(rule.monthly_usd)} a month, action "
        f"block) would be exceeded: ${spent:,.4f} spent since {snapshot.month_start:%Y-%m-%d %H:%M} "
        f"UTC and ${held:,.4f} reserved by calls in flight; this call may cost up to "
        f"${amount:,.4f}. Nothing was sent. Raise the budget (`{rule.set_command()}`), lower "
        f"max_tokens, or wait until {snapshot.next_month:%Y-%m-%d %H:%M} UTC."
    )
