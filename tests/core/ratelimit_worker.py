"""A second process for the shared-limit tests: acquires through Redis and prints what it got.

Usage: python ratelimit_worker.py '{"redis_url": ..., "namespace": ..., "window_seconds": 60,
"provider": ...,
"limit": {...RateLimit fields...}, "tokens": [estimate per request, ...]}'
Prints a JSON list with one boolean per request: whether an immediate permit was granted.
"""

from __future__ import annotations

import json
import sys

from gatehouse_core.providers import RateLimit
from gatehouse_core.ratelimit import RateLimiter


def main(spec: dict) -> list[bool]:
    limiter = RateLimiter(
        spec["redis_url"], namespace=spec["namespace"], window_seconds=spec["window_seconds"]
    )
    if limiter.storage_kind != "redis":
        raise SystemExit("the worker could not reach Redis")
    limit = RateLimit.from_json(spec["limit"])
    return [
        limiter.acquire(spec["provider"], limit, tokens, 0) is not None for tokens in spec["tokens"]
    ]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
