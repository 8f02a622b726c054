"""One client of bench_overhead.py, in its own process: warm up, time, write JSON, exit.

    python bench/overhead_worker.py --client raw --base-url URL --out FILE [...]

Started by bench_overhead.py, once per client per round, never by hand. Runs under the project's
venv (raw, gateway-*) or under bench/.venv-litellm (raw, litellm-*): imports of gatehouse_core and
litellm happen only inside the builders that need them, and LiteLLM's global callbacks die with
the process. Clients:

- raw                 the openai SDK straight at the upstream (the baseline of its venv)
- gateway-sqlite      Gateway.chat, audit into SQLite, in-process limiter
- gateway-postgres    Gateway.chat, audit into PostgreSQL (--db-url), in-process limiter
- gateway-redis       Gateway.chat, audit into SQLite, limits shared through Redis (--redis-url)
- gateway-budget      Gateway.chat with a global monthly budget set (audit on SQLite)
- litellm-router      litellm.Router: the same two providers, retries and rpm/tpm limits
- litellm-completion  litellm.completion straight at the upstream
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MESSAGES, ROOT, threaded, timed  # noqa: E402
from upstream import KEY, MODEL  # noqa: E402

# The same limits on every side: high enough never to bite, so bookkeeping is what is measured.
RPM, TPM, CONCURRENT = 1_000_000, 1_000_000_000, 64
Call = Callable[[], None]
Stream = Callable[[], float]


def build_raw(args: argparse.Namespace) -> tuple[Call, Stream, Callable[[], dict]]:
    import openai

    client = openai.OpenAI(base_url=args.base_url, api_key=KEY)

    def call() -> None:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"usage": {"include": True}}
        )

    def stream() -> float:
        t0, first = time.perf_counter(), 0.0
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            if not first and chunk.choices and chunk.choices[0].delta.content:
                first = (time.perf_counter() - t0) * 1000
        return first

    return call, stream, lambda: {"openai": openai.__version__}


def build_gateway(args: argparse.Namespace) -> tuple[Call, Stream, Callable[[], dict]]:
    sys.path.insert(0, str(ROOT))
    from cryptography.fernet import Fernet

    from gatehouse_core.audit import AuditWriter
    from gatehouse_core.catalog import Catalog
    from gatehouse_core.crypto import SecretBox
    from gatehouse_core.db import make_engine
    from gatehouse_core.gateway import Gateway
    from gatehouse_core.providers import ProviderConfig, RateLimit
    from gatehouse_core.ratelimit import RateLimiter
    from gatehouse_core.registry import Registry

    workdir = Path(tempfile.mkdtemp(prefix="gh-bench-"))
    # The driver passes one key to every round, so a kept PostgreSQL database stays readable.
    os.environ.setdefault("GATEHOUSE_SECRETS_KEY", Fernet.generate_key().decode())
    url = args.db_url if args.client == "gateway-postgres" else f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    registry = Registry(engine, SecretBox.from_env())
    limit = RateLimit(
        requests_per_minute=RPM, tokens_per_minute=TPM, concurrent_requests=CONCURRENT
    )
    existing = {view.name for view in registry.providers()}  # PostgreSQL is kept across rounds
    for priority, name in enumerate(("primary", "fallback"), start=1):
        if name in existing:
            continue
        registry.add(
            ProviderConfig(
                name=name,
                base_url=args.base_url,
                default_model=MODEL,
                priority=priority,
                is_default=priority == 1,
                rate_limit=limit,
            ),
            actor="bench",
            api_key=KEY,
        )
    redis_url = args.redis_url if args.client == "gateway-redis" else None
    limiter = RateLimiter(redis_url, namespace=f"gatehouse-bench-{uuid.uuid4().hex[:8]}")
    if redis_url and limiter.storage_kind != "redis":
        raise SystemExit(f"Redis at {redis_url} is unreachable")
    audit = AuditWriter(engine, spill_dir=workdir / "spill")
    catalog = Catalog(engine)
    budgets = None
    if args.client == "gateway-budget":
        # A global block budget far above the run's spend: every call reserves and settles,
        # and the admitter reads the database only on its periodic refresh.
        from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
        from gatehouse_core.spend.budgets import Budgets

        BudgetStore(engine).set(make_rule("global", None, 1_000_000.0), actor="bench")
        budgets = Budgets(engine, catalog)
    gateway = Gateway(registry, catalog=catalog, limiter=limiter, audit=audit, budgets=budgets)

    def call() -> None:
        gateway.chat(MESSAGES, model=MODEL, source="bench")

    def stream() -> float:
        t0, first = time.perf_counter(), 0.0
        for delta in gateway.stream(MESSAGES, model=MODEL, source="bench"):
            if not first and delta:
                first = (time.perf_counter() - t0) * 1000
        return first

    def finish() -> dict:
        gateway.audit.flush(timeout=120)
        written = gateway.audit.stats.written
        gateway.close()
        engine.dispose()
        import openai

        import gatehouse_core

        return {
            "gatehouse": gatehouse_core.__version__,
            "openai": openai.__version__,
            "audit_rows_written": written,
            "limiter_storage": limiter.storage_kind,
        }

    return call, stream, finish


def build_litellm(args: argparse.Namespace) -> tuple[Call, Stream, Callable[[], dict]]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # else it downloads a price map at import
    import litellm

    litellm.suppress_debug_info = True
    params = {"model": f"openrouter/{MODEL}", "api_base": args.base_url, "api_key": KEY}
    config: dict = {}
    if args.client == "litellm-router":
        model_list = [
            {"model_name": name, "litellm_params": {**params, "rpm": RPM, "tpm": TPM}}
            for name in ("bench", "bench-fallback")
        ]
        config = {
            "model_list": model_list,
            "fallbacks": [{"bench": ["bench-fallback"]}],
            "num_retries": 2,
            # rpm/tpm in litellm_params are enforced only by the usage-based strategies.
            "routing_strategy": "usage-based-routing-v2",
        }
        router = litellm.Router(**config)

        def send(**kw):
            return router.completion(model="bench", messages=MESSAGES, **kw)
    else:

        def send(**kw):
            return litellm.completion(messages=MESSAGES, **params, **kw)

    def call() -> None:
        send()

    def stream() -> float:
        t0, first = time.perf_counter(), 0.0
        for chunk in send(stream=True):
            if not first and chunk.choices and chunk.choices[0].delta.content:
                first = (time.perf_counter() - t0) * 1000
        return first

    def finish() -> dict:
        import openai

        info = {"litellm": _version("litellm"), "openai": openai.__version__}
        if config:
            info["router_config"] = {k: v for k, v in config.items() if k != "model_list"}
            info["router_config"]["deployments"] = [m["model_name"] for m in config["model_list"]]
        return info

    return call, stream, finish


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--per-thread", type=int, default=20)
    parser.add_argument("--stream-calls", type=int, default=100)
    parser.add_argument("--db-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()

    if args.client == "raw":
        call, stream, finish = build_raw(args)
    elif args.client.startswith("gateway-"):
        call, stream, finish = build_gateway(args)
    elif args.client.startswith("litellm-"):
        call, stream, finish = build_litellm(args)
    else:
        raise SystemExit(f"unknown client {args.client!r}")

    timed(call, args.warmup)
    timed(stream, max(1, args.warmup // 5))
    cpu0 = time.process_time()
    latency = timed(call, args.calls)
    seq_cpu_us = (time.process_time() - cpu0) / args.calls * 1e6
    rps, threaded_cpu_us, threaded_latency = threaded(call, args.threads, args.per_thread)
    ttft = timed(stream, args.stream_calls)
    result = {
        "client": args.client,
        "latency_ms": latency,
        "cpu_us_per_call_sequential": seq_cpu_us,
        "throughput_rps": rps,
        "cpu_us_per_call_threaded": threaded_cpu_us,
        "threaded_latency_ms": threaded_latency,
        "ttft_ms": ttft,
        "threads": args.threads,
        "versions": finish(),
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
