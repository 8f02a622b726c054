"""Helpers every bench shares: the upstream process, timing loops, statistics, result files.

Imports nothing from gatehouse_core, so the LiteLLM worker (in its own venv, see
requirements-bench.txt) can use it too.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def start_fast_upstream(workdir: Path) -> tuple[subprocess.Popen, str]:
    """bench/upstream.py in its own process; returns it and its `/api/v1` base URL."""
    port_file = workdir / "fast-upstream.port"
    port_file.unlink(missing_ok=True)  # a stale port from an earlier run would be read first
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "upstream.py"), "--port-file", str(port_file)]
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/api/v1"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench/upstream.py did not start (see its output above)")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def upstream_get(base_url: str, path: str, method: str = "GET") -> dict[str, Any]:
    """A control call to bench/upstream.py (`/_arrivals`, `/_cost`, `/_reset`)."""
    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
    return json.loads(body)


def socket_floor_ms(base_url: str, n: int) -> float:
    """Median round trip of a bare keep-alive socket client: the upstream's own cost as a client
    with no SDK sees it. The raw SDK's median should be within a millisecond or two of this."""
    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    samples = []
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += sock.recv(65536)
            samples.append((time.perf_counter() - t0) * 1000)
    upstream_get(base_url, "/_reset", "POST")
    return statistics.median(samples)


def postgres_database(admin_url: str) -> tuple[str | None, str | None, Any]:
    """A fresh database on the PostgreSQL server; (url, reason-if-not, drop function)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"gatehouse_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any driver error means "not available", said plainly below
        return None, f"PostgreSQL at {admin_url} unavailable: {type(exc).__name__}", None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, None, drop


def timed(fn: Callable[[], float | None], n: int) -> list[float]:
    """Milliseconds per call; a call that returns a number (a TTFT) reports that instead."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        value = fn()
        samples.append(value if value is not None else (time.perf_counter() - t0) * 1000)
    return samples


def threaded(
    fn: Callable[[], object], threads: int, per_thread: int
) -> tuple[float, float, list[float]]:
    """(calls per second, client CPU µs per call, ms per call) with `threads` threads each making
    `per_thread` calls."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    latencies: list[float] = []  # list.append is atomic under the GIL

    def worker() -> None:
        barrier.wait()
        try:
            for _ in range(per_thread):
                t0 = time.perf_counter()
                fn()
                latencies.append((time.perf_counter() - t0) * 1000)
        except BaseException as exc:  # reported, not swallowed: a failed call voids the figure
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if errors:
        raise RuntimeError(f"{len(errors)} threaded calls failed; first: {errors[0]!r}")
    calls = threads * per_thread
    return calls / wall, cpu / calls * 1e6, latencies


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank, of a non-empty list."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "loadavg_1m_at_start": round(load[0], 2),
    }


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_result(name: str, payload: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    """bench/results/<name>.json with machine, revision and date added; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "bench": name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_rev(),
        "machine": machine(),
        **payload,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
