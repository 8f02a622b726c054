"""Microseconds per acquire + settle + release, by limit kind and storage.

Run: .venv/bin/python bench/bench_ratelimit.py [--n 5000] [--redis redis://127.0.0.1:6379/0]
Prints one line per case. Limits are set high enough that nothing waits: this measures the
cost a request pays on the hot path, not queueing. Redis rows are skipped when it is unreachable.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from gatehouse_core.providers import RateLimit
from gatehouse_core.ratelimit import RateLimiter

CASES = {
    "no limits": RateLimit(),
    "concurrency only": RateLimit(concurrent_requests=1000),
    "rpm only": RateLimit(requests_per_minute=10**9),
    "rpm + tpm": RateLimit(requests_per_minute=10**9, tokens_per_minute=10**12),
    "rpm + tpm + concurrency": RateLimit(
        requests_per_minute=10**9, tokens_per_minute=10**12, concurrent_requests=1000
    ),
}


def measure(limiter: RateLimiter, limit: RateLimit, n: int) -> tuple[float, float]:
    """(median, p99) µs for one acquire + settle + release."""
    provider = f"bench-{uuid.uuid4().hex[:8]}"
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        permit = limiter.acquire(provider, limit, 1200, 0)
        assert permit is not None, "a bench limit was hit; raise it"
        permit.settle(900)
        permit.release()
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def clean(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="calls per case")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    args = parser.parse_args()

    namespace = f"gatehouse-bench-{uuid.uuid4().hex[:8]}"
    backends = [("memory", RateLimiter())]
    redis_limiter = RateLimiter(args.redis, namespace=namespace)
    if redis_limiter.storage_kind == "redis":
        backends.append(("redis", redis_limiter))
    else:
        print(f"(Redis at {args.redis} unreachable: Redis rows skipped)")

    print(f"{'case':<26}{'storage':<9}{'median µs':>11}{'p99 µs':>10}   (n={args.n})")
    try:
        for name, limit in CASES.items():
            for kind, limiter in backends:
                if kind == "redis" and limit.requests_per_minute is None:
                    continue  # no storage call: the same as memory
                median, p99 = measure(limiter, limit, args.n)
                print(f"{name:<26}{kind:<9}{median:>11.1f}{p99:>10.1f}")
    finally:
        if len(backends) > 1:
            clean(args.redis, namespace)


if __name__ == "__main__":
    main()
