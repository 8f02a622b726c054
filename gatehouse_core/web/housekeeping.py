"""Background chores of a running console process: daily audit retention, and reconciling
yesterday with OpenRouter's ledger when a provider has a management key.

Runs on its own daemon thread, never on a request: `prune_if_due` and
`reconcile_yesterday_if_due` are each claimed by one process a day (so several replicas run
them once) and may take as long as the work they do. A failing chore logs a warning and is
asked again next round; it never ends the thread or the console.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from ..crypto import SecretBox
from ..errors import GatehouseError
from ..registry import Registry
from ..spend.reconcile import reconcile_yesterday_if_due
from ..spend.retention import prune_if_due

log = logging.getLogger("gatehouse.console")

CHECK_EVERY_S = 3600.0  # how often to ask; the claims make each chore once a day


class Housekeeping:
    """A daemon thread asking every chore every hour until `stop()`."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        every: float = CHECK_EVERY_S,
        registry: Callable[[], Registry] | None = None,
    ):
        self._engine = engine
        self._every = every
        self._registry = registry or self._own_registry
        self._built: Registry | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="gatehouse-housekeeping", daemon=True
        )

    def start(self) -> Housekeeping:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _own_registry(self) -> Registry:
        # Only management keys are read through it (no snapshot, no gateway).
        if self._built is None:
            self._built = Registry(self._engine(), SecretBox.from_env())
        return self._built

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._chore("audit retention", self._prune)
            self._chore("reconciliation", self._reconcile)
            self._stopped.wait(self._every)

    def _chore(self, name: str, chore: Callable[[], None]) -> None:
        try:
            chore()
        except GatehouseError as exc:  # database down, bad setting, key refused: try next hour
            log.warning("%s skipped: %s", name, exc)
        except Exception:  # never let a chore kill the thread silently
            log.warning("%s failed", name, exc_info=True)

    def _prune(self) -> None:
        result = prune_if_due(self._engine())
        if result is not None:
            log.info("audit retention ran", extra={"fields": {"result": str(result)}})

    def _reconcile(self) -> None:
        results = reconcile_yesterday_if_due(self._engine(), self._registry())
        if results:  # a day the ledger could not answer was logged as a warning already
            fields = {
                "days": [f"{r.provider} {r.day}" for r in results if r.ok],
                "failed": [f"{r.provider} {r.day}" for r in results if not r.ok],
                "corrected_generations": sum(r.corrected_generations for r in results),
            }
            log.info("reconciliation ran", extra={"fields": fields})
