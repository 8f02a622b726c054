"""Total deadlines for upstream attempts: one watchdog thread cuts connections that run late.

httpx's read timeout is an idle timeout: an upstream that trickles keep-alive whitespace or slow
chunks resets it with every byte and can hold a call for as long as it likes. Each attempt
therefore gets an `AttemptDeadline`; once the response headers are in, it is armed with the
response, and at the deadline the watchdog shuts the response's socket down, which wakes the
reading thread with an error the gateway then classifies as a timeout. Before the headers, the
per-request timeout (set to the time left) bounds the wait.

One thread serves every attempt of the process (no timer thread per call); it starts on first
use and again in a forked child, whose copy of it is not running.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

# Cancelled alarms wait in the heap until their time comes up; past this many (and half the
# heap), it is rebuilt without them, so a busy process does not keep minutes of dead entries.
COMPACT_AFTER = 1000


class Watchdog:
    """Runs `action()` at monotonic time `at` unless cancelled first."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.cancelled = 0  # alarms cancelled but still in the heap

    def arm(self, at: float, action: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(action, self)
        with self._cond:
            if self.cancelled > COMPACT_AFTER and self.cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self.cancelled = 0
            heapq.heappush(self._heap, (at, next(self._order), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="gatehouse-deadlines", daemon=True
                )
                self._thread.start()
            # Wake the thread only when its wait must get shorter: waking it on every call
            # made it compete for the GIL with the call itself.
            if self._heap[0][2] is alarm:
                self._cond.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    self.cancelled = max(self.cancelled - 1, 0)
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, alarm = self._heap[0]
                wait = at - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            alarm.fire()


class _Alarm:
    __slots__ = ("action", "cancelled", "fired", "_lock", "_watchdog")

    def __init__(self, action: Callable[[], None], watchdog: Watchdog):
        self.action: Callable[[], None] | None = action
        self.cancelled = False
        self.fired = False
        self._lock = threading.Lock()
        self._watchdog = watchdog

    def fire(self) -> None:
        with self._lock:
            if self.cancelled or self.action is None:
                return
            self.fired = True
            action, self.action = self.action, None
        with contextlib.suppress(Exception):  # the connection may be gone already
            action()

    def cancel(self) -> None:
        with self._lock:
            if self.cancelled or self.fired:
                return
            self.cancelled = True
            self.action = None  # let go of the response now, not when the deadline comes
        with self._watchdog._cond:
            self._watchdog.cancelled += 1


WATCHDOG = Watchdog()


class AttemptDeadline:
    """The end of one attempt: `at` (time.monotonic) and which setting set it (for messages)."""

    def __init__(self, at: float, setting: str, seconds: float, watchdog: Watchdog = WATCHDOG):
        self.at = at
        self.setting = setting
        self.seconds = seconds
        self._watchdog = watchdog
        self._alarm: _Alarm | None = None

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    @property
    def fired(self) -> bool:
        """True once the watchdog cut this attempt's connection."""
        return self._alarm is not None and self._alarm.fired

    @property
    def passed(self) -> bool:
        """True once the watchdog cut the connection (or the time is simply up)."""
        return (self._alarm is not None and self._alarm.fired) or time.monotonic() >= self.at

    def watch(self, http_response: Any) -> None:
        """Cut this response's connection at the deadline."""
        self.cancel()
        self._alarm = self._watchdog.arm(self.at, lambda: cut(http_response))

    def cancel(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()

    def message(self) -> str:
        return f"no complete answer within {self.seconds:g}s ({self.setting})"


def cut(http_response: Any) -> None:
    """Shut the response's socket down, which wakes a thread blocked reading it."""
    stream = getattr(http_response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            return
    http_response.close()
