"""A separate process for the gateway-level database outage soak (test_gateway_db_outage.py).

Usage: python outage_worker.py THREADS
Wired like a production service: `Gateway.from_env()` (GATEHOUSE_DATABASE_URL points through the
test's TCP proxy; GATEHOUSE_HOME holds the spill folder). `THREADS` threads call chat() and
stream() until the process is stopped, printing one line per call: "ok" or "fail <error>".
The test sends SIGTERM during the outage: the audit writer spills what it holds, and the test
imports it with `gatehouse audit flush`.
"""

from __future__ import annotations

import sys
import threading
import time

from gatehouse_core import Gateway

MESSAGES = [{"role": "user", "content": "hello from the worker"}]
MAX_CALLS_PER_THREAD = 5_000  # bounded; the test stops the process long before


def main() -> None:
    threads = int(sys.argv[1])
    gateway = Gateway.from_env()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    def work(seed: int) -> None:
        for n in range(MAX_CALLS_PER_THREAD):
            try:
                if (n + seed) % 2:
                    gateway.chat(MESSAGES, max_tokens=20, workflow_id="worker")
                else:
                    "".join(gateway.stream(MESSAGES, max_tokens=20, workflow_id="worker"))
                say("ok")
            except BaseException as exc:  # noqa: BLE001 -- the test counts any failure
                say(f"fail {exc!r}".replace("\n", " "))
            time.sleep(0.005)

    for seed in range(threads):
        threading.Thread(target=work, args=(seed,), daemon=True).start()
    while True:  # the main thread waits for SIGTERM (the audit writer's handler runs here)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
