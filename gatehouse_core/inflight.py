"""Attempts sent and not yet audited, so a process that ends mid-call still audits them.

The gateway notes each attempt here right before it sends, and `claim`s it when it records the
attempt's row. When the process is about to end with calls still running (SIGTERM's default
action, or interpreter exit with daemon threads mid-call; see lifecycle.py), `stop_all` hands
back every attempt still running, once, for a row saying the process stopped before the answer
came; a calling thread that gets to record after that finds its call stopped and records
nothing, so no attempt has two rows; an attempt about to start after that is not sent (the
process ends before its answer could come). Two lock round trips per attempt; no I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["InFlight", "Running"]


@dataclass
class Running:
    """One attempt on the wire: enough to write its row if the process stops."""

    call: Any  # gateway._Call; it carries `stopped`
    provider: Any  # registry.ResolvedProvider
    model: str
    t0: float  # the gateway's clock when the attempt was sent
    wait_ms: float
    state: Any = None  # streams.StreamState of a stream: what arrived so far


class InFlight:
    def __init__(self) -> None:
        # Reentrant: a SIGTERM handler runs on the main thread, which may hold it mid-call.
        self._lock = threading.RLock()
        self._running: dict[int, Running] = {}  # by id(call): a call has one attempt at a time
        self._stopping = False

    def start(self, running: Running) -> bool:
        """Note an attempt about to be sent; False once the process is stopping (send nothing:
        the process ends before an answer could come back)."""
        with self._lock:
            if self._stopping:
                return False
            self._running[id(running.call)] = running
            return True

    def note_stream(self, call: Any, state: Any) -> None:
        with self._lock:
            running = self._running.get(id(call))
            if running is not None:
                running.state = state

    def claim(self, call: Any) -> bool:
        """The call's thread is about to record a row: False if the process stopped the call
        (its row is written already), else True, and the running attempt is forgotten."""
        with self._lock:
            if call.stopped:
                return False
            self._running.pop(id(call), None)
            return True

    def stop_all(self) -> list[Running]:
        """Every attempt still running, each call marked stopped; no new attempt starts."""
        with self._lock:
            self._stopping = True
            taken = list(self._running.values())
            self._running.clear()
            for running in taken:
                running.call.stopped = True
            return taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)
