"""Gateway overhead over the raw openai SDK, against a local fake OpenRouter in its own process.

Budget (README / brief): median added latency per call ≤ 1 ms with audit on, and ≥ 0.8× the raw
SDK's throughput at 32 threads. Run from the repo root:

    python bench/bench_gateway.py [--calls 2000] [--threads 32] [--redis redis://127.0.0.1:6379/0]

Both sides talk to the same upstream over keep-alive connections; sequential runs alternate in
blocks so drift in the machine's speed hits both equally. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gatehouse_core.audit import AuditWriter  # noqa: E402
from gatehouse_core.catalog import Catalog  # noqa: E402
from gatehouse_core.crypto import SecretBox  # noqa: E402
from gatehouse_core.db import make_engine  # noqa: E402
from gatehouse_core.gateway import Gateway  # noqa: E402
from gatehouse_core.providers import ProviderConfig, RateLimit  # noqa: E402
from gatehouse_core.ratelimit import RateLimiter  # noqa: E402
from gatehouse_core.registry import Registry  # noqa: E402
from tests.fakes.openrouter import DEFAULT_KEY  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
MODEL = "openai/gpt-4o-mini"


def start_upstream(workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.openrouter",
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        cwd=ROOT,
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text().strip():
            return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/api/v1"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake upstream did not start")


def build_gateway(base_url: str, workdir: Path, redis_url: str | None) -> Gateway:
    os.environ["GATEHOUSE_SECRETS_KEY"] = Fernet.generate_key().decode()
    engine = make_engine(f"sqlite:///{workdir / 'bench.db'}")
    registry = Registry(engine, SecretBox.from_env())
    registry.add(
        ProviderConfig(
            name="bench",
            base_url=base_url,
            default_model=MODEL,
            # Limits high enough never to bite, so their bookkeeping cost is measured.
            rate_limit=RateLimit(
                requests_per_minute=1_000_000,
                tokens_per_minute=1_000_000_000,
                concurrent_requests=64,
            ),
        ),
        actor="bench",
        api_key=DEFAULT_KEY,
    )
    return Gateway(
        registry,
        catalog=Catalog(engine),
        limiter=RateLimiter(redis_url),
        audit=AuditWriter(engine, spill_dir=workdir / "spill"),
    )


def timed_calls(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def throughput(fn, threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            fn()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per side")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--per-thread", type=int, default=40)
    parser.add_argument("--redis", default=None, help="use Redis rate-limit storage")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, base_url = start_upstream(workdir)
        try:
            raw = openai.OpenAI(base_url=base_url, api_key=DEFAULT_KEY, max_retries=0)
            gateway = build_gateway(base_url, workdir, args.redis)

            def raw_call() -> None:
                raw.chat.completions.create(
                    model=MODEL, messages=MESSAGES, extra_body={"usage": {"include": True}}
                )

            def gateway_call() -> None:
                gateway.chat(MESSAGES, model=MODEL, source="bench")

            for fn in (raw_call, gateway_call):  # warm connections, caches, imports
                timed_calls(fn, 50)
            raw_ms: list[float] = []
            gw_ms: list[float] = []
            block = 100
            for _ in range(max(1, args.calls // block)):
                raw_ms += timed_calls(raw_call, block)
                gw_ms += timed_calls(gateway_call, block)
            raw_med, gw_med = statistics.median(raw_ms), statistics.median(gw_ms)
            print(f"sequential, {len(raw_ms)} calls each (ms per call)")
            print(
                f"  raw openai SDK   median {raw_med:.3f}  p90 {statistics.quantiles(raw_ms, n=10)[8]:.3f}"
            )
            print(
                f"  gateway (audit)  median {gw_med:.3f}  p90 {statistics.quantiles(gw_ms, n=10)[8]:.3f}"
            )
            print(f"  overhead         median {gw_med - raw_med:+.3f} ms (budget ≤ 1 ms)")

            raw_rps = throughput(raw_call, args.threads, args.per_thread)
            gw_rps = throughput(gateway_call, args.threads, args.per_thread)
            print(f"throughput, {args.threads} threads × {args.per_thread} calls")
            print(f"  raw openai SDK   {raw_rps:8.1f} calls/s")
            print(
                f"  gateway (audit)  {gw_rps:8.1f} calls/s  ratio {gw_rps / raw_rps:.2f} (budget ≥ 0.80)"
            )
            gateway.audit.flush(timeout=30)
            print(f"audit rows written: {gateway.audit.stats.written}")
            gateway.close()
        finally:
            upstream.terminate()
            upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
