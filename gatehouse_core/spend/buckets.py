"""The fixed latency histogram of the hourly rollup: one bound list for latency and TTFT.

Rollup rows keep a count per bucket (`latency_h00`…, `ttft_h00`…) so p50/p95 over any set of
rows is a sum of counts plus one interpolation, never a scan of raw rows. Changing the bounds
changes the meaning of stored counts: add a migration and a rebuild, never edit in place.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Upper bounds in milliseconds; the last bucket is open-ended (≥ 60 s).
BOUNDS_MS: tuple[float, ...] = (
    25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 60000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
LATENCY_COLUMNS: tuple[str, ...] = tuple(f"latency_h{i:02d}" for i in range(BUCKETS))
TTFT_COLUMNS: tuple[str, ...] = tuple(f"ttft_h{i:02d}" for i in range(BUCKETS))


def bucket_index(ms: float) -> int:
    """The bucket a duration falls in: the first whose upper bound is ≥ ms."""
    return bisect.bisect_left(BOUNDS_MS, ms)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a histogram, interpolated linearly inside its bucket.

    None for an empty histogram; the open last bucket reports its lower bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = BOUNDS_MS[index - 1] if index > 0 else 0.0
            if index >= len(BOUNDS_MS):
                return float(low)
            high = BOUNDS_MS[index]
            return float(low + (high - low) * (rank - seen) / count)
        seen += count
    return float(BOUNDS_MS[-1])
