"""`gatehouse providers …`: list, show, add, update, remove, enable, disable, set-key,
set-management-key."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError
from ..providers import PROVIDER_TYPES, ProviderConfig, RateLimit
from ..registry import ProviderView, undecryptable_message
from .chat import register_provider_test
from .context import Context, refuse_pasted_key
from .output import add_key_source, print_json, print_table, read_api_key


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("providers", help="manage LLM provider configurations")
    cmds = group.add_subparsers(dest="providers_command", metavar="ACTION", required=True)

    p = cmds.add_parser("list", help="list providers (keys masked)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=list_providers)

    p = cmds.add_parser("show", help="show one provider")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=show_provider)

    p = cmds.add_parser("add", help="add a provider")
    p.add_argument("name")
    _config_options(p, adding=True)
    add_key_source(p)
    p.set_defaults(handler=add_provider)

    p = cmds.add_parser("update", help="change a provider (only the options given)")
    p.add_argument("name")
    _config_options(p, adding=False)
    p.add_argument(
        "--confirm-new-host",
        metavar="HOST",
        help="allow a --base-url on another host to receive the stored API key",
    )
    add_key_source(p)
    p.set_defaults(handler=update_provider)

    for action, handler, text in (
        ("remove", remove_provider, "delete a provider and its stored key"),
        ("enable", enable_provider, "enable a provider"),
        ("disable", disable_provider, "disable a provider (it is skipped by the gateway)"),
    ):
        p = cmds.add_parser(action, help=text)
        p.add_argument("name")
        p.set_defaults(handler=handler)

    p = cmds.add_parser("set-key", help="store or replace a provider's API key (encrypted)")
    p.add_argument("name")
    add_key_source(p, required=True)
    p.set_defaults(handler=set_key)

    p = cmds.add_parser(
        "set-management-key",
        help="store or replace a provider's OpenRouter management key (encrypted; for "
        "`gatehouse reconcile`)",
    )
    p.add_argument("name")
    add_key_source(p, required=True)
    p.set_defaults(handler=set_management_key)

    register_provider_test(cmds)


REMOVE = "none"


def _limit(value: str) -> int | str:
    """A rate limit: a whole number, or `none` to remove the limit."""
    if value.lower() == REMOVE:
        return REMOVE
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number or 'none'") from None


def _header(value: str) -> tuple[str, str]:
    name, sep, header_value = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE")
    return name.strip(), header_value


def _config_options(p: argparse.ArgumentParser, *, adding: bool) -> None:
    p.add_argument("--base-url", required=adding, metavar="URL", help="OpenAI-style base URL")
    p.add_argument("--model", required=adding, metavar="MODEL", help="default model id")
    p.add_argument("--type", choices=PROVIDER_TYPES, default="openrouter" if adding else None)
    p.add_argument("--priority", type=int, metavar="N", help="fallback order, 1 first")
    p.add_argument("--default", action="store_true", help="make this the default provider")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--disabled", action="store_true", help="store it disabled")
    if not adding:
        state.add_argument("--enabled", action="store_true", help="enable it")
    for flag, text in (
        ("--rpm", "requests per minute"),
        ("--tpm", "tokens per minute"),
        ("--concurrency", "concurrent requests per process"),
    ):
        p.add_argument(flag, type=_limit, metavar="N", help=f"{text} ('none' removes the limit)")
    p.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra header, e.g. X-Title=GateHouse (repeatable; NAME= removes on update)",
    )


def _limits_given(args: argparse.Namespace) -> dict[str, int | None]:
    given = {}
    for flag, field in (
        ("rpm", "requests_per_minute"),
        ("tpm", "tokens_per_minute"),
        ("concurrency", "concurrent_requests"),
    ):
        value = getattr(args, flag)
        if value is not None:
            given[field] = None if value == REMOVE else value
    return given


def list_providers(args: argparse.Namespace, ctx: Context) -> int:
    views = ctx.registry.providers()
    _warn_undecryptable(views)
    if args.json:
        print_json([v.to_json() for v in views])
        return 0
    if not views:
        print(
            "No providers yet. Add one: gatehouse providers add NAME --base-url URL --model MODEL"
        )
        return 0
    unknown = _unknown_defaults(ctx, views)
    print_table(
        ["name", "type", "priority", "default", "enabled", "model", "api key", "source"],
        [
            [
                v.name,
                v.config.type,
                v.config.priority,
                v.config.is_default,
                v.config.enabled,
                v.config.default_model + (" (not in catalog)" if v.name in unknown else ""),
                _key_display(v),
                v.config.source,
            ]
            for v in views
        ],
    )
    if unknown:
        print(
            f"\n{len(unknown)} default model(s) are not in the refreshed catalog; check the "
            "spelling (gatehouse models --search TEXT)"
        )
    return 0


def _unknown_defaults(ctx: Context, views: list[ProviderView]) -> dict[str, str]:
    from ..catalog import Catalog

    return Catalog(ctx.engine).unknown_default_models([v.config for v in views])


def show_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    view = ctx.registry.get(args.name)
    _warn_undecryptable([view])
    if args.json:
        print_json(view.to_json())
        return 0
    c = view.config
    rows = [
        ("name", c.name),
        ("type", c.type),
        ("source", c.source),
        ("enabled", "yes" if c.enabled else "no"),
        ("default", "yes" if c.is_default else "no"),
        ("priority", c.priority),
        ("base url", c.base_url),
        ("default model", c.default_model),
        ("requests/min", c.rate_limit.requests_per_minute or "unlimited"),
        ("tokens/min", c.rate_limit.tokens_per_minute or "unlimited"),
        ("concurrency", c.rate_limit.concurrent_requests or "unlimited"),
        ("headers", ", ".join(f"{k}={v}" for k, v in c.headers.items()) or "-"),
        ("api key", _key_display(view)),
        (
            "key rotated",
            view.key.rotated_at.isoformat() if view.key and view.key.rotated_at else "-",
        ),
        ("mgmt key", _management_display(view)),  # the OpenRouter management key
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def add_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    api_key = read_api_key(args.api_key_env, args.api_key_stdin)
    priority = ctx.registry.next_priority() if args.priority is None else args.priority
    config = ProviderConfig(
        name=args.name,
        base_url=args.base_url,
        default_model=args.model,
        type=args.type,
        priority=priority,
        is_default=args.default,
        enabled=not args.disabled,
        rate_limit=RateLimit(**{k: v for k, v in _limits_given(args).items() if v is not None}),
        headers={k: v for k, v in args.header if v},
    )
    ctx.registry.add(config, actor=ctx.actor, api_key=api_key)
    print(f"Added provider {args.name}" + (" with an encrypted API key" if api_key else ""))
    if not api_key:
        print(f"Store its key with: gatehouse providers set-key {args.name} --api-key-stdin")
    return 0


def update_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    api_key = read_api_key(args.api_key_env, args.api_key_stdin)
    changes: dict[str, Any] = {}
    for arg, field in (
        ("base_url", "base_url"),
        ("model", "default_model"),
        ("type", "type"),
        ("priority", "priority"),
    ):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    if args.default:
        changes["is_default"] = True
    if args.disabled:
        changes["enabled"] = False
        changes["is_default"] = False
    if args.enabled:
        changes["enabled"] = True
    changes.update(_limits_given(args))
    # Header edits are applied inside the registry's transaction (no read-then-write here).
    headers_set = {name: value for name, value in args.header if value}
    headers_remove = [name for name, value in args.header if not value]
    if not changes and api_key is None and not args.header:
        raise ConfigError("nothing to update: give at least one option (see --help)")
    ctx.registry.update(
        args.name,
        actor=ctx.actor,
        api_key=api_key,
        headers_set=headers_set,
        headers_remove=headers_remove,
        confirm_host=args.confirm_new_host,
        **changes,
    )
    print(f"Updated provider {args.name}")
    return 0


def remove_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    ctx.registry.remove(args.name, actor=ctx.actor)
    print(f"Removed provider {args.name} and its stored key")
    return 0


def enable_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    ctx.registry.set_enabled(args.name, True, actor=ctx.actor)
    print(f"Enabled provider {args.name}")
    return 0


def disable_provider(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    ctx.registry.set_enabled(args.name, False, actor=ctx.actor)
    print(f"Disabled provider {args.name}")
    return 0


def set_key(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    api_key = read_api_key(args.api_key_env, args.api_key_stdin)
    assert api_key is not None  # the argument group is required
    ctx.registry.set_key(args.name, api_key, actor=ctx.actor)
    print(f"Stored the API key of {args.name} ({ctx.registry.get(args.name).key.masked})")
    return 0


def set_management_key(args: argparse.Namespace, ctx: Context) -> int:
    refuse_pasted_key(args.name, ctx.registry, "NAME")
    key = read_api_key(args.api_key_env, args.api_key_stdin)
    assert key is not None  # the argument group is required
    ctx.registry.set_management_key(args.name, key, actor=ctx.actor)
    shown = ctx.registry.get(args.name).management_key
    print(f"Stored the management key of {args.name} ({shown.masked if shown else '?'})")
    return 0


def _management_display(view: ProviderView) -> str:
    key = view.management_key
    if key is None:
        return "(none)"
    return key.masked if key.decryptable else f"{key.masked} (cannot decrypt)"


def _key_display(view: ProviderView) -> str:
    if view.key is None:
        return "(none)"
    return view.key.masked if view.key.decryptable else f"{view.key.masked} (cannot decrypt)"


def _warn_undecryptable(views: list[ProviderView]) -> None:
    names = [v.name for v in views if v.key_status == "undecryptable"]
    if names:
        print(f"warning: {undecryptable_message(names)}", file=sys.stderr)
