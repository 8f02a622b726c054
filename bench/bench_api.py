"""HTTP API overhead: the openai SDK through `gatehouse serve` versus straight at the upstream.

    python bench/bench_api.py [--calls 500] [--clients 16]

The fake OpenRouter runs in its own process, the API in another (`gatehouse serve`, one worker,
SQLite, audit on), the clients here. Sequential runs alternate in blocks so machine drift hits
both sides equally; streaming TTFT is the time to the first content delta. Prints numbers and
writes nothing; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import openai
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_gateway import MESSAGES, MODEL, start_upstream  # noqa: E402

from gatehouse_core.crypto import SecretBox  # noqa: E402
from gatehouse_core.db import make_engine  # noqa: E402
from gatehouse_core.providers import ProviderConfig  # noqa: E402
from gatehouse_core.registry import Registry  # noqa: E402
from gatehouse_core.tokens import TokenStore  # noqa: E402
from tests.fakes.openrouter import DEFAULT_KEY  # noqa: E402


def start_api(workdir: Path, upstream: str) -> tuple[subprocess.Popen, str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GATEHOUSE_DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
        "GATEHOUSE_SECRETS_KEY": Fernet.generate_key().decode(),
        "GATEHOUSE_HOME": str(workdir / ".gatehouse"),
    }
    engine = make_engine(env["GATEHOUSE_DATABASE_URL"])
    Registry(engine, SecretBox.from_env(env), env=env).add(
        ProviderConfig(name="bench", base_url=upstream, default_model=MODEL),
        actor="bench",
        api_key=DEFAULT_KEY,
    )
    _, token = TokenStore(engine).create("bench", "operator", actor="bench")
    engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatehouse_core", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, f"{base}/api/v1", token
        except httpx2.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the API did not start")


def timed(fn: Callable[[], float | None], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ttft = fn()
        samples.append(ttft if ttft is not None else (time.perf_counter() - t0) * 1000)
    return samples


def throughput(fn: Callable[[], object], clients: int, per_client: int) -> float:
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_client):
            fn()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * per_client / (time.perf_counter() - t0)


def sides(raw: openai.OpenAI, api: openai.OpenAI) -> dict[str, tuple[Callable, Callable]]:
    def call(client: openai.OpenAI) -> Callable[[], None]:
        return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES) and None

    def ttft(client: openai.OpenAI) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            first = None
            for chunk in client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            ):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = (time.perf_counter() - t0) * 1000
            return first or 0.0

        return run

    return {"non-stream": (call(raw), call(api)), "stream TTFT": (ttft(raw), ttft(api))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per side")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, upstream_url = start_upstream(workdir)
        api_proc, api_url, token = start_api(workdir, upstream_url)
        try:
            raw = openai.OpenAI(base_url=upstream_url, api_key=DEFAULT_KEY, max_retries=0)
            api = openai.OpenAI(base_url=api_url, api_key=token, max_retries=0)
            for name, (raw_fn, api_fn) in sides(raw, api).items():
                timed(raw_fn, 30), timed(api_fn, 30)  # warm up
                raw_ms: list[float] = []
                api_ms: list[float] = []
                for _ in range(max(1, args.calls // 50)):
                    raw_ms += timed(raw_fn, 50)
                    api_ms += timed(api_fn, 50)
                r, a = statistics.median(raw_ms), statistics.median(api_ms)
                print(f"{name}, sequential, {len(raw_ms)} calls each (ms, median)")
                print(f"  raw SDK → upstream   {r:.3f}")
                print(f"  SDK → GateHouse API  {a:.3f}   added {a - r:+.3f}")
            raw_fn, api_fn = sides(raw, api)["non-stream"]
            raw_rps = throughput(raw_fn, args.clients, args.per_client)
            api_rps = throughput(api_fn, args.clients, args.per_client)
            print(f"non-stream, {args.clients} concurrent clients (calls/s)")
            print(f"  raw {raw_rps:.1f}   API {api_rps:.1f}   ratio {api_rps / raw_rps:.2f}")
        finally:
            api_proc.terminate()
            api_proc.wait(timeout=30)
            upstream.terminate()
            upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
