"""HTTP API overhead: the openai SDK through `gatehouse serve` and through the LiteLLM proxy
versus straight at the upstream.

    python bench/bench_api.py [--calls 500] [--clients 64] [--quick] [--out DIR]

The fake OpenRouter runs in its own process, each proxy in another (`gatehouse serve`, one
worker, SQLite, audit on; `litellm --config` from bench/.venv-litellm, one worker, no
database), the clients here. Sequential runs interleave the three sides in blocks so machine
drift hits them equally; streaming TTFT is the time to the first content delta; the concurrent
figure is calls per second with `--clients` threads. Writes bench/results/api.json (the table
in bench/run_all.py reads it); prints a summary; asserts nothing.
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
from typing import Any

import httpx2
import openai
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_gateway import MESSAGES, MODEL, start_upstream  # noqa: E402
from common import BENCH, RESULTS, pct, write_result  # noqa: E402

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
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatehouse_core", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{base}/healthz", "the API")
    return proc, f"{base}/api/v1", token


def wait_until_up(proc: subprocess.Popen, url: str, what: str) -> None:
    """Until `url` answers 200 (15 s at most); else the process is killed and the bench ends."""
    for _ in range(300):
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{what} did not start")


LITELLM_VENV = BENCH / ".venv-litellm"
REQUIREMENTS = ROOT / "requirements-bench.txt"
LITELLM_KEY = "sk-bench-litellm-master"  # a bench-only key of the local proxy
BLOCK = 50  # calls per side before switching: interleaved, so drift hits every side alike
GOAL_ADDED_MS = 2.0


def litellm_proxy(
    workdir: Path, upstream: str, install: bool, venv: Path = LITELLM_VENV
) -> tuple[Any, str | None, str]:
    """(process, base URL, note): the LiteLLM proxy in bench/.venv-litellm on one model that
    points at the same upstream; (None, None, why) when it cannot run."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None, None, f"{venv} is missing (bench_overhead.py creates it)"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the internet at start
        "LITELLM_LOG": "ERROR",
    }
    probe = [str(python), "-c", "import litellm.proxy.proxy_server"]
    if subprocess.run(probe, capture_output=True, cwd=workdir, env=env).returncode != 0:
        if not install:
            return None, None, "the proxy's packages are missing (run without --no-install)"
        print(f"installing {REQUIREMENTS.name} into {venv} (the proxy's packages)…")
        pip = [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
        if subprocess.run(pip, timeout=900).returncode != 0:
            return None, None, f"installing {REQUIREMENTS.name} failed"
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"  # LiteLLM's OpenAI-compatible provider: sends MODEL
        f"      api_base: {upstream}\n"
        f"      api_key: {DEFAULT_KEY}\n"
        "general_settings:\n"  # LiteLLM refuses to start without a master key
        f"  master_key: {LITELLM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],  # fmt: skip
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "litellm.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):  # LiteLLM takes a while to import
        if proc.poll() is not None:
            tail = (workdir / "litellm.log").read_text(errors="replace").strip().splitlines()
            return None, None, f"litellm exited: {(tail or ['no output'])[-1][:200]}"
        try:
            if httpx2.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                return proc, f"{base}/v1", "litellm --config, 1 worker, no database"
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    return None, None, "the LiteLLM proxy did not start within 120 s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(fn: Callable[[], float | None], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ttft = fn()
        samples.append(ttft if ttft is not None else (time.perf_counter() - t0) * 1000)
    return samples


def throughput(fn: Callable[[], object], clients: int, per_client: int) -> float:
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            for _ in range(per_client):
                fn()
        except BaseException as exc:  # a failed call voids the figure: reported, not hidden
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} concurrent clients failed; first: {errors[0]!r}")
    return clients * per_client / (time.perf_counter() - t0)


def call(client: openai.OpenAI) -> Callable[[], None]:
    return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES) and None


def ttft(client: openai.OpenAI) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        first = None
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = (time.perf_counter() - t0) * 1000
        return first or 0.0

    return run


def sequential(fns: dict[str, Callable[[], float | None]], calls: int, warmup: int) -> dict:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        timed(fn, warmup)
    for _ in range(max(1, calls // BLOCK)):
        for name, fn in fns.items():
            samples[name] += timed(fn, min(BLOCK, calls))
    raw = statistics.median(samples["raw"])
    out = {}
    for name, values in samples.items():
        median = statistics.median(values)
        out[name] = {
            "calls": len(values),
            "median_ms": round(median, 3),
            "p95_ms": round(pct(values, 0.95), 3),
            "added_median_ms": None if name == "raw" else round(median - raw, 3),
        }
    return out


def concurrent(clients: dict[str, openai.OpenAI], n: int, per_client: int) -> dict:
    """Non-stream calls/s of each side with `n` concurrent clients, and its ratio to raw."""
    out = {}
    for name, client in clients.items():  # one side at a time: they share the cores
        out[name] = {"calls_per_s": round(throughput(call(client), n, per_client), 1)}
    raw_rps = out["raw"]["calls_per_s"]
    for figures in out.values():
        figures["ratio_to_raw"] = round(figures["calls_per_s"] / raw_rps, 3)
    return out


def parse_load_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The load options every proxy bench takes (after the bench's own), `--quick` applied."""
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per side")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny counts: proves it runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup, args.clients, args.per_client = 20, 5, 4, 3
    return args


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """≤ 2 ms median added on each figure, and ahead of the LiteLLM proxy on every one."""
    ours, peer = "gatehouse", "litellm-proxy"
    added = [results[k][ours]["added_median_ms"] for k in ("non_stream", "stream_ttft")]
    out: dict[str, Any] = {"added_le_2ms": all(a <= GOAL_ADDED_MS for a in added)}
    if peer in results["non_stream"]:
        faster = [
            results[k][ours]["median_ms"] <= results[k][peer]["median_ms"]
            for k in ("non_stream", "stream_ttft")
        ]
        conc = results["concurrent"]
        faster.append(conc[ours]["calls_per_s"] >= conc[peer]["calls_per_s"])
        out["ahead_of_litellm_proxy"] = all(faster)
    else:
        out["ahead_of_litellm_proxy"] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument("--no-install", action="store_true", help="never pip-install into its venv")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    args = parse_load_args(parser)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, upstream_url = start_upstream(workdir)
        api_proc = lite_proc = None
        try:  # every process started here is stopped in the finally block, whatever fails
            api_proc, api_url, token = start_api(workdir, upstream_url)
            lite_url, lite_note = None, "not run: --no-litellm"
            if not args.no_litellm:
                lite_proc, lite_url, lite_note = litellm_proxy(
                    workdir, upstream_url, not args.no_install, args.litellm_venv
                )
            clients = {
                "raw": openai.OpenAI(base_url=upstream_url, api_key=DEFAULT_KEY, max_retries=0),
                "gatehouse": openai.OpenAI(base_url=api_url, api_key=token, max_retries=0),
            }
            if lite_url:
                clients["litellm-proxy"] = openai.OpenAI(
                    base_url=lite_url, api_key=LITELLM_KEY, max_retries=0
                )
            results: dict[str, Any] = {
                "non_stream": sequential(
                    {n: call(c) for n, c in clients.items()}, args.calls, args.warmup
                ),
                "stream_ttft": sequential(
                    {n: ttft(c) for n, c in clients.items()}, args.calls, args.warmup
                ),
                "concurrent": concurrent(clients, args.clients, args.per_client),
            }
        finally:
            for proc in (api_proc, lite_proc, upstream):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
    payload = {
        "quick": args.quick,
        "status": "ok",
        "calls": args.calls,
        "clients": args.clients,
        "per_client": args.per_client,
        "sides": {
            "raw": "openai SDK straight at the upstream",
            "gatehouse": "gatehouse serve, 1 worker, SQLite, audit on",
            "litellm-proxy": lite_note if lite_url else {"unavailable": lite_note},
        },
        "results": results,
        "goals": goals(results),
    }
    path = write_result("api", payload, args.out)
    print_summary(payload)
    print(f"wrote {path}")


def print_results(results: dict[str, Any], clients: int) -> None:
    """The sequential figures a result holds (non-stream, stream TTFT), then the concurrent."""
    for key, label in (("non_stream", "non-stream"), ("stream_ttft", "stream TTFT")):
        if key not in results:
            continue
        print(f"{label}, sequential (ms, median; added over the raw SDK)")
        for name, r in results[key].items():
            added = "" if r["added_median_ms"] is None else f"   added {r['added_median_ms']:+.3f}"
            print(f"  {name:<14} {r['median_ms']:.3f}{added}")
    print(f"non-stream, {clients} concurrent clients (calls/s)")
    for name, r in results["concurrent"].items():
        print(f"  {name:<14} {r['calls_per_s']:.1f}   ratio {r['ratio_to_raw']:.2f}")


def print_summary(payload: dict[str, Any]) -> None:
    print_results(payload["results"], payload["clients"])
    lite = payload["sides"]["litellm-proxy"]
    if isinstance(lite, dict):
        print(f"LiteLLM proxy: {lite['unavailable']}")
    print(f"goals: {payload['goals']}")


if __name__ == "__main__":
    main()
