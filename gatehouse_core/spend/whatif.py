"""What-if repricing: what a period's tokens would have cost at another model's catalog prices.

Per group (usually per requested model): uncached input tokens × prompt price, cached input
tokens × cache-read price (the prompt price when the catalog has none, as the gateway's
estimate does), output tokens × completion price, and calls × the per-request price. Reasoning
tokens are part of the output tokens on OpenRouter and are not billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import FREE_SUFFIX, CatalogEntry
from ..errors import ConfigError
from .queries import Group


@dataclass(frozen=True)
class Repriced:
    group: str
    calls: int
    actual_usd: float
    prompt_usd: float
    cache_read_usd: float
    completion_usd: float
    request_usd: float

    @property
    def whatif_usd(self) -> float:
        return self.prompt_usd + self.cache_read_usd + self.completion_usd + self.request_usd

    @property
    def difference_usd(self) -> float:
        """What-if minus actual: negative means the other model would have been cheaper."""
        return self.whatif_usd - self.actual_usd


@dataclass(frozen=True)
class WhatIf:
    model: str
    rows: list[Repriced]

    @property
    def actual_usd(self) -> float:
        return sum(r.actual_usd for r in self.rows)

    @property
    def whatif_usd(self) -> float:
        return sum(r.whatif_usd for r in self.rows)

    @property
    def difference_usd(self) -> float:
        return self.whatif_usd - self.actual_usd


def reprice(groups: list[Group], entry: CatalogEntry | None, model_id: str) -> WhatIf:
    """Reprice each group's tokens at `entry`'s prices; ConfigError when a price is unknown."""
    if entry is None:
        raise ConfigError(
            f"{model_id!r} is not in the model catalog; pick a listed model or refresh the catalog"
        )
    free = model_id.endswith(FREE_SUFFIX)
    prompt, completion = entry.prompt_price, entry.completion_price
    if not free and (prompt is None or completion is None):
        raise ConfigError(
            f"{model_id!r} has no fixed price in the catalog (variable or unknown); pick another"
        )
    prompt = 0.0 if free else float(prompt or 0.0)
    completion = 0.0 if free else float(completion or 0.0)
    cache_read = prompt if entry.cache_read_price is None or free else entry.cache_read_price
    per_request = 0.0 if free else float(entry.request_price or 0.0)
    rows = []
    for g in groups:
        u = g.usage
        cached = min(max(u.cached_tokens, 0), u.input_tokens)
        rows.append(
            Repriced(
                group=g.name,
                calls=u.calls,
                actual_usd=u.cost_usd,
                prompt_usd=(u.input_tokens - cached) * prompt,
                cache_read_usd=cached * cache_read,
                completion_usd=u.output_tokens * completion,
                request_usd=u.calls * per_request,
            )
        )
    return WhatIf(model_id, rows)
