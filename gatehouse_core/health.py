"""In-process provider health: failed calls per provider and the cooldown they trigger.

A provider on which COOLDOWN_FAILURES calls in a row failed within COOLDOWN_WINDOW_SECONDS is
skipped for the cooldown (GATEHOUSE_COOLDOWN_SECONDS). A call counts once however many retries
it made; a success resets the count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger("gatehouse.gateway")

COOLDOWN_FAILURES = 5
COOLDOWN_WINDOW_SECONDS = 60.0


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


class HealthBook:
    """Thread-safe health of every provider this process has called."""

    def __init__(self, clock: Callable[[], float], cooldown_seconds: float):
        self._clock = clock
        self.cooldown_seconds = cooldown_seconds
        self._states: dict[str, ProviderHealth] = {}
        self._lock = threading.Lock()

    def cooling(self, names: list[str]) -> set[str]:
        """The names among `names` that are in cooldown now."""
        now = self._clock()
        with self._lock:
            return {n for n in names if n in self._states and self._states[n].in_cooldown(now)}

    def snapshot(self) -> list[ProviderHealth]:
        """Copies, sorted by name, with cooldowns that have ended cleared."""
        now = self._clock()
        with self._lock:
            states = [ProviderHealth(**vars(h)) for h in self._states.values()]
        for h in states:
            if not h.in_cooldown(now):
                h.cooldown_until = h.cooldown_until_wall = None
        return sorted(states, key=lambda h: h.name)

    def mark(self, name: str, *, ok: bool, error: str | None = None) -> datetime | None:
        """Record one call's outcome on a provider; may start its cooldown, and then returns
        when that cooldown ends (wall clock), so the caller can raise the alert once."""
        now = self._clock()
        with self._lock:
            state = self._states.get(name)
            if state is None:
                state = self._states[name] = ProviderHealth(name)
            if ok:
                state.consecutive_failures = 0
                state.first_failure_at = None
                state.last_success_at = datetime.now(UTC)
                return None
            if (
                state.first_failure_at is None
                or now - state.first_failure_at > COOLDOWN_WINDOW_SECONDS
            ):
                state.consecutive_failures = 0
                state.first_failure_at = now
            state.consecutive_failures += 1
            state.last_failure_at = datetime.now(UTC)
            state.last_error = error
            if state.consecutive_failures < COOLDOWN_FAILURES:
                return None
            state.cooldown_until = now + self.cooldown_seconds
            state.cooldown_until_wall = datetime.fromtimestamp(
                time.time() + self.cooldown_seconds, UTC
            )
            state.consecutive_failures = 0
            state.first_failure_at = None
            until = state.cooldown_until_wall
        log.warning(
            "provider cooling down",
            extra={"fields": {"provider": name, "seconds": self.cooldown_seconds, "error": error}},
        )
        return until
