"""What the thread-pool hop costs a proxy: two minimal FastAPI proxies on the openai SDK
(synchronous client in the pool vs `AsyncOpenAI` on the loop) beside `gatehouse serve`.

    python bench/bench_proxy_floor.py [--calls 500] [--quick] [--out DIR]

The HTTP API issue leaves the choice between a bounded thread pool and an async gateway path
to measurement. The floor proxies have no gateway at all (bench/proxy_floor_app.py), so their
added time over the raw SDK is what uvicorn + FastAPI + one openai call cost in each design;
the difference between them bounds what an async rewrite of the gateway could save. Same
upstream (tests/fakes/openrouter.py), same uvicorn settings as `gatehouse serve`, sides
interleaved in blocks. Writes bench/results/proxy_floor.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import (  # noqa: E402
    call,
    concurrent,
    free_port,
    parse_load_args,
    print_results,
    sequential,
    start_api,
    wait_until_up,
)
from bench_gateway import start_upstream  # noqa: E402
from common import write_result  # noqa: E402

from tests.fakes.openrouter import DEFAULT_KEY  # noqa: E402


def start_floor(mode: str, upstream: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PROXY_FLOOR_MODE": mode,
        "PROXY_FLOOR_UPSTREAM": upstream,
        "PROXY_FLOOR_KEY": DEFAULT_KEY,
    }
    argv = ["-m", "uvicorn", "proxy_floor_app:app", "--app-dir", str(ROOT / "bench")]
    argv += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen([sys.executable, *argv], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{base}/docs", f"the {mode} floor proxy")
    return proc, f"{base}/v1"


def main() -> None:
    args = parse_load_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, upstream_url = start_upstream(workdir)
        procs.append(upstream)
        try:
            api_proc, api_url, token = start_api(workdir, upstream_url)
            procs.append(api_proc)
            urls = {"raw": (upstream_url, DEFAULT_KEY), "gatehouse": (api_url, token)}
            for mode in ("pool", "async"):
                proc, url = start_floor(mode, upstream_url)
                procs.append(proc)
                urls[f"floor-{mode}"] = (url, DEFAULT_KEY)
            clients = {
                name: openai.OpenAI(base_url=url, api_key=key, max_retries=0)
                for name, (url, key) in urls.items()
            }
            results: dict[str, Any] = {
                "non_stream": sequential(
                    {n: call(c) for n, c in clients.items()}, args.calls, args.warmup
                ),
                "concurrent": concurrent(clients, args.clients, args.per_client),
            }
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    payload = {
        "quick": args.quick,
        "calls": args.calls,
        "clients": args.clients,
        "sides": {
            "raw": "openai SDK straight at the upstream",
            "gatehouse": "gatehouse serve, 1 worker, SQLite, audit on",
            "floor-pool": "FastAPI + sync openai client in the thread pool, nothing else",
            "floor-async": "FastAPI + AsyncOpenAI on the event loop, nothing else",
        },
        "results": results,
    }
    path = write_result("proxy_floor", payload, args.out)
    print_results(results, args.clients)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
