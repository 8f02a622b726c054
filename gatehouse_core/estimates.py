"""How many output tokens to charge the rate limiter for a call that sets no `max_tokens`.

The limiter charges a call's tokens before it is sent and corrects the figure with the real
usage after. Counting too few (charging no output at all) makes every correction an increase,
which must reach the shared Redis window at once, on the caller's thread, or the calls admitted
meanwhile would pass the provider's limit: a second round trip on every such call. Charging a
high guess instead makes most corrections refunds, which wait and are batched off the caller's
thread (ratelimit.py `_Corrections`). The guess is the 90th percentile of the provider's last
`WINDOW` outputs; no history, no guess. In memory, per process; a few µs per call.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["OutputEstimate"]

WINDOW = 32  # outputs remembered per provider
QUANTILE = 0.9  # so about nine corrections in ten are refunds


class OutputEstimate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: dict[str, deque[int]] = {}
        self._guess: dict[str, int] = {}

    def guess(self, provider: str) -> int:
        """Output tokens to charge a call to `provider` that sets no max_tokens."""
        return self._guess.get(provider, 0)

    def note(self, provider: str, output_tokens: int | None) -> None:
        """A finished call's real output (calls without max_tokens only)."""
        if output_tokens is None or output_tokens < 0:
            return
        with self._lock:
            recent = self._recent.get(provider)
            if recent is None:
                recent = self._recent[provider] = deque(maxlen=WINDOW)
            recent.append(output_tokens)
            ordered = sorted(recent)
            self._guess[provider] = ordered[int(QUANTILE * (len(ordered) - 1))]
