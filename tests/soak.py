"""How big the soaks are: `GATEHOUSE_SOAK_SCALE` multiplies their call counts.

The default (1) keeps each soak to seconds, which is what `.ci/run` uses; a scale of 25 gives
the issue's full sizes (the fault soak's 2,000 calls, about a minute here) for a run by hand:
    GATEHOUSE_SOAK_SCALE=25 python -m pytest -m soak
"""

from __future__ import annotations

import os

SCALE_VARIABLE = "GATEHOUSE_SOAK_SCALE"


def soak_scale() -> float:
    raw = os.environ.get(SCALE_VARIABLE, "").strip() or "1"
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} is not a number; use e.g. 1 or 30") from None
    if scale <= 0:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} must be above 0")
    return scale


def scaled(count: int) -> int:
    """`count` times the soak scale, at least 1."""
    return max(1, round(count * soak_scale()))
