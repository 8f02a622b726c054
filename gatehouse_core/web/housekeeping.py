"""Background chores of a running console process: daily audit retention.

Runs on its own daemon thread, never on a request: `prune_if_due` is claimed by one process a
day (so several replicas prune once) and may take as long as the prune it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from ..errors import GatehouseError
from ..spend.retention import prune_if_due

log = logging.getLogger("gatehouse.console")

CHECK_EVERY_S = 3600.0  # how often to ask; the claim makes it once a day across processes


class Housekeeping:
    """A daemon thread asking `prune_if_due` every hour until `stop()`."""

    def __init__(self, engine: Callable[[], Engine], *, every: float = CHECK_EVERY_S):
        self._engine = engine
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="gatehouse-housekeeping", daemon=True
        )

    def start(self) -> Housekeeping:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                result = prune_if_due(self._engine())
                if result is not None:
                    log.info("audit retention ran", extra={"fields": {"result": str(result)}})
            except GatehouseError as exc:  # database down, bad setting: say so, try next hour
                log.warning("audit retention skipped: %s", exc)
            except Exception:  # never let a chore kill the thread silently
                log.exception("audit retention failed")
            self._stopped.wait(self._every)
