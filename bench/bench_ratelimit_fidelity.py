"""Rate-limit fidelity as the provider sees it: arrivals at the upstream per sliding 60 s window.

    python bench/bench_ratelimit_fidelity.py [--quick] [--seconds 70] [--procs 4] [--rpm 600]

Several processes (default 4), each a Gateway with a few threads calling as fast as they can
(demand far above the limit), share one provider's limits through Redis. The upstream
(bench/upstream.py, own process) stamps every chat request on arrival. Then, per case:

- the most arrivals (or tokens) in any window [t, t + 60 s) starting at an arrival — the provider's
  strict view; it must never exceed the limit;
- the same for 59 s windows, to show how close an overrun sits to the edge;
- the admitted fraction of the last full minute of the run (arrivals / limit, goal ≥ 97%), when
  the run lasted long enough to have one (`--seconds` ≥ 61);
- the same cases with per-process (memory) limits, the contrast: up to `procs` × the limit.

Cases: requests per minute, then tokens per minute (each call charges the upstream's reported
prompt + completion tokens). Writes bench/results/ratelimit_fidelity.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH,
    DEFAULT_REDIS,
    MESSAGES,
    ROOT,
    start_fast_upstream,
    stop,
    upstream_get,
    write_result,
)
from upstream import COMPLETION_TOKENS, KEY, MODEL, PROMPT_TOKENS  # noqa: E402

TOKENS_PER_CALL = PROMPT_TOKENS + COMPLETION_TOKENS
WINDOW = 60.0


# ---- one worker process ----------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Call through a Gateway from `--threads` threads between the start and end the driver sets."""
    sys.path.insert(0, str(ROOT))
    from cryptography.fernet import Fernet

    from gatehouse_core.crypto import SecretBox
    from gatehouse_core.db import make_engine
    from gatehouse_core.errors import GatewayError
    from gatehouse_core.gateway import Gateway
    from gatehouse_core.providers import ProviderConfig, RateLimit
    from gatehouse_core.ratelimit import RateLimiter
    from gatehouse_core.registry import Registry

    # Refused calls are the point here; their per-call warnings would flood the terminal.
    logging.getLogger("gatehouse").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="gh-fidelity-"))
    os.environ["GATEHOUSE_SECRETS_KEY"] = Fernet.generate_key().decode()
    engine = make_engine(f"sqlite:///{workdir / 'w.db'}")
    registry = Registry(engine, SecretBox.from_env())
    limit = RateLimit(requests_per_minute=args.rpm or None, tokens_per_minute=args.tpm or None)
    registry.add(
        ProviderConfig(
            name="limited", base_url=args.base_url, default_model=MODEL, rate_limit=limit
        ),
        actor="bench",
        api_key=KEY,
    )
    limiter = RateLimiter(args.redis_url or None, namespace=args.namespace)
    storage = limiter.storage_kind
    # No audit writer: the limiter is under test, and the writer's CPU would only add noise.
    gateway = Gateway(registry, limiter=limiter, audit=None, queue_timeout=1.0)
    counts = {"ok": 0, "refused": 0, "failed": 0}
    lock = threading.Lock()

    def loop() -> None:
        while time.time() < args.until:
            try:
                # max_tokens bounds the call's usage, so the limiter's estimate is an upper bound
                # (without it the output is unknown at admission; see the README)
                gateway.chat(MESSAGES, model=MODEL, source="fidelity", max_tokens=COMPLETION_TOKENS)
                key = "ok"
            except GatewayError as exc:
                key = (
                    "refused"
                    if type(exc).__name__ in ("RateLimited", "AllProvidersFailed")
                    else "failed"
                )
            with lock:
                counts[key] += 1

    # Set-up (imports, migrations) takes seconds on a loaded machine: say ready, then wait for
    # the driver's start time so every process begins together.
    args.out.with_suffix(".ready").write_text(storage)
    go = args.out.parent / f"{args.namespace}.go"
    wait_until = time.time() + 600
    while not go.exists():
        if time.time() > wait_until:
            raise SystemExit("the driver never said go")
        time.sleep(0.02)
    start, until = (float(x) for x in go.read_text().split())
    args.until = until
    while time.time() < start:
        time.sleep(0.005)
    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gateway.close()
    engine.dispose()
    args.out.write_text(json.dumps({**counts, "storage": storage}))


# ---- the driver ------------------------------------------------------------------------------


def max_in_window(arrivals: list[tuple[float, int]], width: float, tokens: bool) -> float:
    """Most arrivals (or tokens) in any window [t, t + width) that starts at an arrival."""
    times = [t for t, _ in arrivals]
    weights = [n if tokens else 1 for _, n in arrivals]
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + width)
        best = max(best, prefix[j] - prefix[i])
    return best


def run_case(
    args: argparse.Namespace, base_url: str, workdir: Path, kind: str, shared: bool
) -> dict[str, Any]:
    limit = args.rpm if kind == "rpm" else args.tpm
    namespace = f"gatehouse-fidelity-{uuid.uuid4().hex[:8]}"
    upstream_get(base_url, "/_reset", "POST")
    procs, outs = [], []
    for n in range(args.procs):
        out = workdir / f"{kind}-{shared}-{n}.json"
        outs.append(out)
        cmd = [
            sys.executable,
            str(BENCH / "bench_ratelimit_fidelity.py"),
            "--worker",
            "--base-url",
            base_url,
            "--out",
            str(out),
            "--threads",
            str(args.threads),
            "--namespace",
            namespace,
            f"--{kind}",
            str(limit),
            # only the limit under test: the worker's defaults would set the other one too,
            # and the token counter would then decide the rpm case (issue 13's first reading)
            "--tpm" if kind == "rpm" else "--rpm",
            "0",
        ]
        if shared:
            cmd += ["--redis-url", args.redis]
        procs.append(subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}))
    ready_by = time.time() + args.startup
    while not all(o.with_suffix(".ready").exists() for o in outs):
        if time.time() > ready_by or any(p.poll() is not None for p in procs):
            for proc in procs:
                proc.kill()
            raise SystemExit(f"the {kind} workers did not get ready within {args.startup:g} s")
        time.sleep(0.05)
    start = time.time() + 0.5
    until = start + args.seconds
    partial = workdir / f"{namespace}.go.tmp"
    partial.write_text(f"{start} {until}")
    partial.replace(workdir / f"{namespace}.go")
    deadline = until + 120
    for proc in procs:
        try:
            proc.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    arrivals = sorted(tuple(a) for a in upstream_get(base_url, "/_arrivals")["arrivals"])
    if shared:
        clean_redis(args.redis, namespace)
    workers = [json.loads(o.read_text()) if o.exists() else {"error": "no output"} for o in outs]
    tokens = kind == "tpm"
    # Only arrivals inside the run count: a slow worker's last call may land after `until`.
    window = [a for a in arrivals if start <= a[0] < until + 5]
    last_full = None
    if args.seconds >= WINDOW + 1:
        lo = until - WINDOW
        in_last = [a for a in window if lo <= a[0] < until]
        got = sum(n for _, n in in_last) if tokens else len(in_last)
        last_full = got / limit
    worst = max_in_window(window, WINDOW, tokens)
    per_second = [0] * (int(args.seconds) + 6)
    for at, n in window:
        per_second[min(int(at - start), len(per_second) - 1)] += n if tokens else 1
    return {
        "limit_kind": kind,
        "limit": limit,
        "storage": "redis" if shared else "memory (per process)",
        "storage_seen": sorted({w.get("storage", "?") for w in workers}),
        "seconds": args.seconds,
        "arrivals": len(window),
        "tokens": sum(n for _, n in window),
        "max_in_60s_window": worst,
        "max_in_59s_window": max_in_window(window, WINDOW - 1, tokens),
        "never_over": worst <= limit,
        "admitted_fraction_last_full_minute": last_full,
        "admitted_ok": None if last_full is None else last_full >= 0.97,
        "per_second": per_second,  # arrivals (or tokens) in each second of the run
        "workers": workers,
    }


def clean_redis(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 s per case: proves it runs")
    parser.add_argument("--seconds", type=float, default=70.0, help="length of each case")
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="threads per process")
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=600 * TOKENS_PER_CALL)
    parser.add_argument(
        "--redis", default=os.environ.get("GATEHOUSE_TEST_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument("--no-contrast", action="store_true", help="skip the per-process runs")
    parser.add_argument("--startup", type=float, default=180.0, help="seconds allowed for set-up")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    # worker-only flags
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.seconds = 8.0

    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, base_url = start_fast_upstream(workdir)
        try:
            for kind in ("rpm", "tpm"):
                for shared in (True, False) if not args.no_contrast else (True,):
                    label = f"{kind}, {'Redis' if shared else 'per process'}"
                    print(f"{label}: {args.procs} processes for {args.seconds:g} s…", flush=True)
                    cases.append(run_case(args, base_url, workdir, kind, shared))
        finally:
            stop(upstream)
    payload = {
        "quick": args.quick,
        "settings": {
            "procs": args.procs,
            "threads": args.threads,
            "rpm": args.rpm,
            "tpm": args.tpm,
            "tokens_per_call": TOKENS_PER_CALL,
            "seconds": args.seconds,
            "window_seconds": WINDOW,
        },
        "cases": cases,
    }
    path = (
        write_result("ratelimit_fidelity", payload, args.out)
        if args.out
        else write_result("ratelimit_fidelity", payload)
    )
    for c in cases:
        frac = c["admitted_fraction_last_full_minute"]
        frac_text = "n/a (run < 61 s)" if frac is None else f"{frac:.1%}"
        print(
            f"{c['limit_kind']} {c['storage']:<22} limit {c['limit']:>6}  max/60s {c['max_in_60s_window']:>6}"
            f"  max/59s {c['max_in_59s_window']:>6}  never over: {c['never_over']}  last minute {frac_text}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
