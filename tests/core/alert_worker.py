"""A separate process for the alert race test: waits for a start file, runs one check.

Usage: python alert_worker.py DATABASE_URL START_FILE
Prints a JSON list of the rules this process fired.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gatehouse_core.db import make_engine
from gatehouse_core.spend.alerts import Alerts


def main(url: str, start_file: str) -> None:
    engine = make_engine(url)
    alerts = Alerts(engine)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not Path(start_file).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    print(json.dumps([a.rule for a in alerts.check()]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
