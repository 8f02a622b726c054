"""What the audit writers of this process do on SIGTERM and after `fork`.

Every `AuditWriter` registers itself here (weakly; `close()` unregisters it).

SIGTERM: the first writer created on the main thread installs `_on_sigterm`, once per process,
remembering the handler it found. On SIGTERM it gives the writers at most
`SIGTERM_FLUSH_SECONDS` together, then chains to that previous handler:
- the default action (SIG_DFL): each writer is closed (written, or spilled if the database is
  down), the default is restored and the signal delivered again, so the process still ends
  "killed by SIGTERM" as it would have without us;
- a Python callable: each writer is flushed (not closed: that handler may keep the process
  running for a graceful shutdown), then the callable is called with the same arguments.
Nothing is installed when SIGTERM is ignored (SIG_IGN) or handled outside Python (the handler
cannot be chained), nor from another thread (Python only allows the main thread). Opting out:
`AuditWriter(..., flush_on_sigterm=False)` before any other writer, or install your own handler
after creating the gateway (ours is then replaced; call `gateway.close()` from yours).

Running calls: every `Gateway` registers itself here too (weakly). Where the process is about
to end with calls still on the wire — SIGTERM's default action, or interpreter exit with daemon
threads mid-call — each gateway first audits its running attempts as `process_stopped`
(`Gateway.interrupt_running`, inflight.py), then the writers are closed, so those rows are
written or spilled with the rest. Not when SIGTERM chains to a Python handler: that process
goes on, and its calls finish and record their own rows. SIGKILL runs nothing: at most one
writer cycle of rows and the calls in flight are lost.

fork: `os.register_at_fork(after_in_child=...)` gives each writer in the child a state of its
own (lock, queue, buffer, thread, spill file names under the child's pid, the engine's pool
disposed without closing the parent's connections). Rows the parent had queued stay the
parent's. A `multiprocessing` child leaves through `os._exit`, which skips atexit, so there the
writers are also closed by a `multiprocessing.util.Finalize` when the child's work returns.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any, Protocol

__all__ = [
    "SIGTERM_FLUSH_SECONDS",
    "install_sigterm_flush",
    "register",
    "register_gateway",
    "unregister",
]

log = logging.getLogger("gatehouse.audit")

SIGTERM_FLUSH_SECONDS = 5.0  # for all writers together; orchestrators wait ~30 s before SIGKILL


class Writer(Protocol):
    def flush(self, timeout: float = ...) -> bool: ...
    def close(self, timeout: float = ...) -> None: ...
    def _after_fork(self) -> None: ...


class Stoppable(Protocol):
    def interrupt_running(self, reason: str) -> int: ...


_writers: weakref.WeakSet[Any] = weakref.WeakSet()
_gateways: weakref.WeakSet[Any] = weakref.WeakSet()
_exit_hook = False  # the atexit hook for running calls, registered once
_lock = threading.Lock()
_installed = False  # once per process: never stack our handler on itself
_previous: Any = None  # the SIGTERM handler we found and chain to


def register(writer: Writer, *, sigterm: bool = True) -> None:
    """Flush `writer` on SIGTERM and give it a fresh state after fork."""
    _writers.add(writer)
    if sigterm:
        install_sigterm_flush()


def register_gateway(gateway: Stoppable) -> None:
    """Audit `gateway`'s running attempts if the process ends under them (see above)."""
    global _exit_hook
    _gateways.add(gateway)
    with _lock:
        if not _exit_hook:
            # atexit runs last in, first out: registered after the first gateway's writer, this
            # runs before that writer closes (a writer closed first spills what comes after).
            atexit.register(_stop_running, "exit")
            _exit_hook = True


def _stop_running(reason: str) -> None:
    for gateway in list(_gateways):
        try:
            gateway.interrupt_running(reason)
        except Exception:  # the process is ending: the writers must still be closed
            log.exception("auditing running calls at %s failed", reason)


def unregister(writer: Writer) -> None:
    _writers.discard(writer)


def install_sigterm_flush() -> bool:
    """Install the chaining SIGTERM handler (idempotent). True when it is in place."""
    global _installed, _previous
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        current = signal.getsignal(signal.SIGTERM)
        if _installed:
            return current is _on_sigterm
        if current is None or current == signal.SIG_IGN:
            return False  # handled in C (cannot chain) or deliberately ignored: leave it
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)
        _installed = True
        return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    deadline = time.monotonic() + SIGTERM_FLUSH_SECONDS
    if not callable(previous):  # the process ends now: its running calls get their rows first
        _stop_running("SIGTERM")
    for writer in list(_writers):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            if callable(previous):
                writer.flush(remaining)
            else:
                writer.close(remaining)
        except Exception:  # a signal handler must reach the chained handler
            log.exception("flushing the audit writer on SIGTERM failed")
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    writers = list(_writers)
    for writer in writers:
        try:
            writer._after_fork()
        except Exception:
            log.exception("restarting the audit writer after fork failed")
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        # Runs in the child's Process._bootstrap, after it clears the inherited finalizers.
        for writer in writers:
            mp_util.register_after_fork(writer, _close_at_multiprocessing_exit)


def _close_at_multiprocessing_exit(writer: Writer) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(writer, writer.close, exitpriority=10)


os.register_at_fork(after_in_child=_after_fork_in_child)
