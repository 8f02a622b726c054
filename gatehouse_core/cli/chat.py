"""`gatehouse chat` and `gatehouse providers test`: send traffic, verify a provider."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import StreamInterrupted
from ..results import ChatResult
from .context import Context, refuse_pasted_key
from .output import print_json

if TYPE_CHECKING:
    from ..gateway import Gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="send one message through the gateway and print the answer")
    p.add_argument("message")
    p.add_argument("--model", metavar="M", help="model id (default: the provider's default model)")
    p.add_argument("--provider", metavar="P", help="provider to try first (default: the default)")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--max-tokens", type=int, metavar="N")
    p.add_argument("--temperature", type=float, metavar="T")
    p.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    p.add_argument("--json", action="store_true", help="print one JSON object (the ChatResult)")
    p.add_argument("--workflow-id", metavar="ID")
    p.add_argument("--trace-id", metavar="ID")
    p.set_defaults(handler=chat)


def register_provider_test(cmds: argparse._SubParsersAction) -> None:
    """`gatehouse providers test NAME`: added to the providers group."""
    p = cmds.add_parser("test", help="check reachability, latency and the key (GET /models, /key)")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=test_provider)


def _gateway(ctx: Context) -> Gateway:
    from ..gateway import Gateway

    gateway = Gateway.from_env(registry=ctx.registry)
    ctx.on_close(gateway.close)  # flushes the audit rows before the process exits
    return gateway


def chat(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.model, ctx.registry, "--model")
    refuse_pasted_key(args.provider, ctx.registry, "--provider")
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.message})
    options = {
        "model": args.model,
        "provider": args.provider,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "workflow_id": args.workflow_id,
        "trace_id": args.trace_id,
        "source": "cli",
        "actor": ctx.actor,
    }
    gateway = _gateway(ctx)
    if not args.stream:
        result = gateway.chat(messages, **options)
        if args.json:
            print_json(result.to_json())
        else:
            print(result.text)
            print(summary(result), file=sys.stderr)
        return 0
    stream = gateway.stream(messages, **options)
    try:
        for delta in stream:
            if not args.json:
                print(delta, end="", flush=True)
    except StreamInterrupted:
        if not args.json:
            print()
        raise
    if args.json:
        print_json(stream.result.to_json())
    else:
        print()
        print(summary(stream.result), file=sys.stderr)
    return 0


def summary(result: ChatResult) -> str:
    """One line of accounting under an answer."""
    cost = (
        "cost unknown"
        if result.cost_usd is None
        else f"${result.cost_usd:.6f} ({result.cost_source})"
    )
    parts = [
        f"{result.provider} · {result.model}",
        f"{result.input_tokens or 0} in / {result.output_tokens or 0} out tokens",
        cost,
        f"{result.latency_ms:.0f} ms",
    ]
    if result.ttft_ms is not None:
        parts.append(f"first token {result.ttft_ms:.0f} ms")
    if len(result.attempts) > 1:
        chain = " → ".join(
            f"{a.provider}:{a.http_status or a.error_type or a.status}" for a in result.attempts
        )
        parts.append(f"attempts {chain}")
    return "— " + " · ".join(parts)


def test_provider(args: argparse.Namespace, ctx: Context) -> int:
    from ..verify import verify_provider  # imports the openai SDK: only when testing

    refuse_pasted_key(args.name, ctx.registry, "NAME")
    report = verify_provider(ctx.registry, args.name, timeout=args.timeout)
    if args.json:
        print_json(report.to_json())
        return 0 if report.ok else 1
    print(f"provider   {report.provider} ({report.base_url})")
    if report.reachable:
        print(
            f"reachable  yes, GET /models in {report.models_latency_ms} ms ({report.model_count} models)"
        )
    else:
        print("reachable  no")
    key = {True: "valid", False: "INVALID", None: "not checked"}[report.key_valid]
    print(f"api key    {key}")
    if report.key_valid:
        limit = "unlimited" if report.key_limit is None else f"${report.key_limit:g}"
        print(
            f"key limit  {limit}, used ${report.key_usage or 0:g}"
            + (
                f", ${report.key_limit_remaining:g} left"
                if report.key_limit_remaining is not None
                else ""
            )
        )
    if report.error:
        print(f"problem    {report.error}")
    return 0 if report.ok else 1
