"""`gatehouse models [--json] [--search TEXT]` and `gatehouse models refresh [--json]`."""

from __future__ import annotations

import argparse
import sys

from ..catalog import Catalog, CatalogEntry, RefreshResult
from .context import Context
from .output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "models",
        help="list the model catalog and its prices, or refresh it from the providers",
        description="Without an action, list the catalog (stored models plus offline defaults).",
    )
    group.add_argument("--json", action="store_true", help="print a JSON list")
    group.add_argument("--search", metavar="TEXT", help="only models whose id or name has TEXT")
    group.set_defaults(handler=list_models)
    actions = group.add_subparsers(dest="models_command", metavar="ACTION")

    p = actions.add_parser("refresh", help="fetch GET {base_url}/models from every provider")
    # SUPPRESS: without the flag here, `models --json refresh` keeps the group's value.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(handler=refresh_models)


def list_models(args: argparse.Namespace, ctx: Context) -> int:
    entries = Catalog(ctx.engine).list(args.search)
    if args.json:
        print_json([e.to_json() for e in entries])
        return 0
    if not entries:
        print(f"No models match {args.search!r}." if args.search else "The catalog is empty.")
        return 0
    print_table(
        ["id", "name", "context", "$/1M in", "$/1M out", "source", "refreshed"],
        [_row(e) for e in entries],
    )
    defaults = sum(e.source == "default" for e in entries)
    print(f"\n{len(entries)} models ({defaults} from the offline defaults)")
    if defaults == len(entries):
        print("Fetch current prices with: gatehouse models refresh")
    return 0


def refresh_models(args: argparse.Namespace, ctx: Context) -> int:
    providers = [view.config for view in ctx.registry.providers() if view.config.enabled]
    if not providers:
        print(
            "error: no enabled provider to refresh from; add one with "
            "gatehouse providers add NAME --base-url URL --model MODEL",
            file=sys.stderr,
        )
        return 1
    progress = None if args.json else _print_progress
    catalog = Catalog(ctx.engine)
    results = catalog.refresh(providers, on_progress=progress)
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        ok = [r for r in results if r.ok]
        # Distinct models: providers on one upstream list the same models.
        models = catalog.stored_count()
        print(f"Refreshed {len(ok)} of {len(results)} providers: {models} models in the catalog")
        for name, model in catalog.unknown_default_models(providers).items():
            print(
                f"warning: the default model of {name}, {model}, is not in the catalog; "
                f"fix it with: gatehouse providers update {name} --model MODEL",
                file=sys.stderr,
            )
    return 0 if any(r.ok for r in results) else 1


def _print_progress(result: RefreshResult) -> None:
    if result.ok:
        print(f"{result.provider}: {result.count} models in {result.latency_ms:.0f} ms")
    else:
        print(f"{result.provider}: failed: {result.error}")


def _row(e: CatalogEntry) -> list[object]:
    return [
        e.id,
        e.name,
        f"{e.context_length:,}" if e.context_length else None,
        _usd(e.prompt_per_million),
        _usd(e.completion_per_million),
        e.source,
        e.refreshed_at.strftime("%Y-%m-%d %H:%M") if e.refreshed_at else None,
    ]


def _usd(per_million: float | None) -> str | None:
    return None if per_million is None else f"{per_million:.4g}"
