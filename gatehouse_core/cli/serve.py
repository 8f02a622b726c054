"""`gatehouse serve [--host 127.0.0.1] [--port 8080] [--workers N]`: the HTTP API alone."""

from __future__ import annotations

import argparse

from .context import Context
from .output import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API alone under uvicorn (the console serves it too, at /api)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=8080, help="port (8080)")
    p.add_argument(
        "--workers", type=positive_int, default=1, metavar="N", help="worker processes (1)"
    )
    p.set_defaults(handler=serve)


def serve(args: argparse.Namespace, ctx: Context) -> int:
    import uvicorn

    from ..api.server import app_from_env

    app_from_env().state.gatehouse.close()  # fail fast here on a bad setting or database
    print(f"GateHouse API on http://{args.host}:{args.port}/api/v1 (docs: /api/docs)", flush=True)
    uvicorn.run(
        "gatehouse_core.api.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
    return 0
