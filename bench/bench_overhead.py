"""Overhead per call beside LiteLLM: every client in its own process, interleaved rounds.

    python bench/bench_overhead.py [--quick] [--rounds 6] [--calls 500] [--threads 32]

One fast upstream (bench/upstream.py, asyncio, fixed reply) in its own process. Each round runs
every client once, in the same order (A B C … A B C …) so machine drift hits all of them alike;
each client is a fresh `overhead_worker.py` process (LiteLLM installs global callbacks). Figures:
median and p99 added latency versus the raw openai SDK *of the same venv* (LiteLLM's venv may
carry another openai), client CPU per call, 32-thread throughput ratio, streaming TTFT.

Before trusting anything, the raw SDK's median is compared with the upstream's own cost (a bare
keep-alive socket client): a gap of tens of milliseconds means a keep-alive stall (delayed ACK
against a split write, ~40 ms per reused connection), and the output says so.

Writes bench/results/overhead.json; prints a summary; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH,
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    ROOT,
    pct,
    postgres_database,
    socket_floor_ms,
    start_fast_upstream,
    stop,
    upstream_get,
    write_result,
)

LITELLM_VENV = BENCH / ".venv-litellm"
REQUIREMENTS = ROOT / "requirements-bench.txt"
PROJECT_CLIENTS = ["raw", "gateway-sqlite", "gateway-postgres", "gateway-redis", "gateway-budget"]
LITELLM_CLIENTS = ["raw", "litellm-router", "litellm-completion"]
SECRETS_KEY = Fernet.generate_key().decode()  # one per run: rounds share the PostgreSQL database
STALL_MS = 30.0  # a raw-SDK median this far above the socket floor is a stall, not the SDK


def litellm_python(install: bool) -> tuple[Path | None, str | None]:
    """bench/.venv-litellm's python, created from requirements-bench.txt when missing."""
    python = LITELLM_VENV / "bin" / "python"
    if python.exists():
        return python, None
    if not install:
        return None, f"{LITELLM_VENV} is missing (run without --no-install to create it)"
    print(f"creating {LITELLM_VENV} from {REQUIREMENTS.name} (once)…", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
            check=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return None, f"installing {REQUIREMENTS.name} into {LITELLM_VENV} failed: {exc}"
    return python, None


def redis_available(url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # unreachable for any reason: the Redis row says so
        return f"Redis at {url} unavailable: {type(exc).__name__}"
    return None


def run_worker(
    python: Path, client: str, args: argparse.Namespace, base_url: str, workdir: Path, extra: dict
) -> dict[str, Any]:
    out = workdir / f"{client}-{uuid.uuid4().hex[:6]}.json"
    cmd = [
        str(python),
        str(BENCH / "overhead_worker.py"),
        "--client",
        client,
        "--base-url",
        base_url,
        "--out",
        str(out),
        "--calls",
        str(args.calls),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--per-thread",
        str(args.per_thread),
        "--stream-calls",
        str(args.stream_calls),
    ]
    for key, value in extra.items():
        if value:
            cmd += [f"--{key}", value]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "GATEHOUSE_SECRETS_KEY": SECRETS_KEY,
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{client} worker failed: {tail[0]}")
    return json.loads(out.read_text())


def summarise(runs: list[dict], baseline: list[dict]) -> dict[str, Any]:
    """Figures for one client from its rounds, against the raw SDK rounds of the same venv."""
    lat = [x for r in runs for x in r["latency_ms"]]
    base = [x for r in baseline for x in r["latency_ms"]]
    ttft = [x for r in runs for x in r["ttft_ms"]]
    base_ttft = [x for r in baseline for x in r["ttft_ms"]]
    lat_t = [x for r in runs for x in r["threaded_latency_ms"]]
    base_t = [x for r in baseline for x in r["threaded_latency_ms"]]
    ratios = [
        r["throughput_rps"] / b["throughput_rps"] for r, b in zip(runs, baseline, strict=True)
    ]
    return {
        "rounds": len(runs),
        "calls": len(lat),
        "median_ms": statistics.median(lat),
        "p99_ms": pct(lat, 0.99),
        "added_median_ms": statistics.median(lat) - statistics.median(base),
        "added_p99_ms": pct(lat, 0.99) - pct(base, 0.99),
        "threaded_median_ms": statistics.median(lat_t),
        "threaded_added_median_ms": statistics.median(lat_t) - statistics.median(base_t),
        "threaded_added_p99_ms": pct(lat_t, 0.99) - pct(base_t, 0.99),
        "cpu_us_per_call": statistics.median(r["cpu_us_per_call_sequential"] for r in runs),
        "cpu_us_per_call_threaded": statistics.median(r["cpu_us_per_call_threaded"] for r in runs),
        "throughput_rps": statistics.median(r["throughput_rps"] for r in runs),
        # per-round ratios, since each round's runs sat side by side in time
        "throughput_ratio": statistics.median(ratios),
        "throughput_ratio_rounds": [round(x, 3) for x in ratios],
        "ttft_median_ms": statistics.median(ttft),
        "added_ttft_median_ms": statistics.median(ttft) - statistics.median(base_ttft),
        "versions": runs[-1]["versions"],
    }


def upstream_check(floor_ms: float, raw_runs: list[dict], server_us: float) -> dict[str, Any]:
    lat = [x for r in raw_runs for x in r["latency_ms"]]
    median = statistics.median(lat)
    gap = median - floor_ms
    near_40 = sum(1 for x in lat if 35 <= x - floor_ms <= 50) / len(lat)
    stall = gap >= STALL_MS or near_40 >= 0.2
    if stall:
        note = (
            f"KEEP-ALIVE STALL: the raw SDK median ({median:.2f} ms) is {gap:.1f} ms above the "
            f"upstream's own cost ({floor_ms:.3f} ms) and {near_40:.0%} of calls sit ~40 ms above "
            "it; figures are not trustworthy until the upstream writes each response in one piece."
        )
    else:
        note = (
            f"ok: raw SDK median {median:.2f} ms vs upstream floor {floor_ms:.3f} ms (gap {gap:.2f} ms "
            "is the SDK's own cost; no keep-alive stall)"
        )
    return {
        "socket_floor_ms": floor_ms,
        "server_handling_median_us": server_us,
        "raw_sdk_median_ms": median,
        "gap_ms": gap,
        "share_near_40ms": near_40,
        "stall_detected": stall,
        "note": note,
    }


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, judged on this run's figures (None where a side is missing)."""
    router = results.get("litellm-router", {}).get("added_median_ms")
    out: dict[str, Any] = {}
    for name in ("gateway-sqlite", "gateway-postgres", "gateway-redis"):
        r = results.get(name)
        if not r or "median_ms" not in r:
            out[name] = None
            continue
        out[name] = {
            "added_le_1ms": r["added_median_ms"] <= 1.0,
            "added_le_quarter_router": None
            if router is None
            else r["added_median_ms"] <= router / 4,
            "throughput_ge_0_8": r["throughput_ratio"] >= 0.8,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: proves it runs")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per run")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--per-thread", type=int, default=25)
    parser.add_argument("--stream-calls", type=int, default=200)
    parser.add_argument(
        "--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument(
        "--redis", default=os.environ.get("GATEHOUSE_TEST_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM side")
    parser.add_argument("--no-install", action="store_true", help="never create the LiteLLM venv")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.warmup = 2, 40, 10
        args.per_thread, args.stream_calls = 2, 10

    unavailable: dict[str, str] = {}
    lite_python = None
    if args.no_litellm:
        unavailable["litellm"] = "not run: --no-litellm"
    else:
        lite_python, reason = litellm_python(install=not args.no_install)
        if reason:
            unavailable["litellm"] = f"not available: {reason}"
    if reason := redis_available(args.redis):
        unavailable["gateway-redis"] = f"not available: {reason}"
    pg_url, reason, drop_pg = postgres_database(args.postgres)
    if reason:
        unavailable["gateway-postgres"] = f"not available: {reason}"

    plan: list[tuple[str, Path, str]] = []  # (label, python, client)
    for client in PROJECT_CLIENTS:
        if client not in unavailable:
            plan.append((client, Path(sys.executable), client))
    if lite_python is not None:
        for client in LITELLM_CLIENTS:
            label = "raw (litellm venv)" if client == "raw" else client
            plan.append((label, lite_python, client))

    runs: dict[str, list[dict]] = {label: [] for label, _, _ in plan}
    failures: dict[str, str] = {}
    extra = {"db-url": pg_url, "redis-url": args.redis}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, base_url = start_fast_upstream(workdir)
        try:
            floor = socket_floor_ms(base_url, 500 if not args.quick else 100)
            for round_no in range(args.rounds):
                for label, python, client in plan:
                    if label in failures:
                        continue
                    print(f"round {round_no + 1}/{args.rounds}: {label}", flush=True)
                    try:
                        runs[label].append(
                            run_worker(python, client, args, base_url, workdir, extra)
                        )
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failures[label] = str(exc)
            server_us = upstream_get(base_url, "/_cost")["median_us"]
        finally:
            stop(upstream)
            if drop_pg is not None:
                drop_pg()

    results: dict[str, Any] = {}
    for label, client_runs in runs.items():
        if label in failures:
            results[label] = {"error": failures[label]}
            continue
        venv_raw = runs["raw (litellm venv)"] if label.startswith("litellm") else runs["raw"]
        if label.startswith("litellm") and "raw (litellm venv)" in failures:
            results[label] = {"error": "its venv's raw SDK baseline failed"}
            continue
        results[label] = summarise(client_runs, venv_raw)
    for label, reason in unavailable.items():
        if label == "litellm":
            for client in ("litellm-router", "litellm-completion"):
                results[client] = {"unavailable": reason}
        else:
            results[label] = {"unavailable": reason}

    check = upstream_check(floor, runs["raw"], server_us) if runs.get("raw") else None
    payload = {
        "quick": args.quick,
        "settings": {
            k: getattr(args, k)
            for k in ("rounds", "calls", "warmup", "threads", "per_thread", "stream_calls")
        },
        "order": [label for label, _, _ in plan],
        "upstream_check": check,
        "clients": results,
        "goals": goals(results),
    }
    path = (
        write_result("overhead", payload, args.out)
        if args.out
        else write_result("overhead", payload)
    )
    print_summary(payload)
    print(f"wrote {path}")


def print_summary(payload: dict[str, Any]) -> None:
    check = payload["upstream_check"]
    if check:
        print(f"upstream check: {check['note']}")
    if payload["quick"]:
        print("QUICK MODE: tiny counts prove the harness runs; the figures mean nothing.")
    print(
        f"{'client':<22}{'added med':>10}{'added p99':>10}{'32t med':>9}{'CPU µs':>9}"
        f"{'thr ratio':>10}{'TTFT ms':>9}"
    )
    for label, r in payload["clients"].items():
        if "median_ms" not in r:
            print(f"{label:<22}{r.get('unavailable') or r.get('error')}")
            continue
        print(
            f"{label:<22}{r['added_median_ms']:>+10.3f}{r['added_p99_ms']:>+10.3f}"
            f"{r['threaded_added_median_ms']:>+9.2f}{r['cpu_us_per_call']:>9.0f}{r['throughput_ratio']:>10.2f}{r['ttft_median_ms']:>9.3f}"
        )


if __name__ == "__main__":
    main()
