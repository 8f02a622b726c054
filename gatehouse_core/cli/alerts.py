"""`gatehouse alerts …`: rules, the webhook, history, a test delivery and a one-shot check.

`gatehouse alerts list --json` prints `{"rules": {"hourly_spend_usd", "budget_thresholds",
"webhook_url" (host only), "secret_env"}, "alerts": [{"id", "kind", "rule", "threshold",
"value", "window_start", "window_end", "fired_at", "text", "acknowledged_at"}],
"deliveries": [{"alert_id", "attempt", "created_at", "url", "status", "http_status", "error"}]}`.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..spend.alerts import AlertConfigStore, Alerts, FiredAlert, parse_thresholds
from ..spend.budget_rules import usd
from .budgets import money
from .context import Context
from .output import print_json, print_table


def _thresholds(value: str) -> tuple[int, ...]:
    try:
        return parse_thresholds(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("alerts", help="cost alerts, their webhook and history")
    cmds = group.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    p = cmds.add_parser("set", help="set an alert rule")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--hourly-spend", type=money, metavar="USD", help="alert above USD/hour")
    rule.add_argument("--no-hourly-spend", action="store_true", help="switch the hourly rule off")
    rule.add_argument(
        "--budget-thresholds",
        type=_thresholds,
        metavar="P,P,…",
        help="percents of a budget that alert, e.g. 50,80,100",
    )
    p.set_defaults(handler=set_rule)

    p = cmds.add_parser("webhook", help="deliver alerts as signed JSON POSTs to URL")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("url", nargs="?", metavar="URL")
    target.add_argument("--remove", action="store_true", help="stop delivering to a webhook")
    p.add_argument(
        "--secret-env",
        metavar="VAR",
        help="sign with the secret in this environment variable (read when an alert is sent)",
    )
    p.set_defaults(handler=set_webhook)

    p = cmds.add_parser("list", help="rules, recent alerts and webhook deliveries")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.set_defaults(handler=list_alerts)

    p = cmds.add_parser("test", help="send a test alert to the webhook")
    p.set_defaults(handler=test_webhook)

    p = cmds.add_parser("check", help="evaluate the rules once (run it from cron)")
    p.set_defaults(handler=check)


def set_rule(args: argparse.Namespace, ctx: Context) -> int:
    store = AlertConfigStore(ctx.engine)
    if args.budget_thresholds is not None:
        config = store.set_budget_thresholds(args.budget_thresholds, actor=ctx.actor)
        shown = ", ".join(f"{t}%" for t in config.budget_thresholds)
        print(f"Budgets alert at {shown} of their monthly amount")
        return 0
    config = store.set_hourly_spend(
        None if args.no_hourly_spend else args.hourly_spend, actor=ctx.actor
    )
    if config.hourly_spend_usd is None:
        print("The hourly spend alert is off")
    else:
        print(f"Alert when an hour's spend reaches {usd(config.hourly_spend_usd)}")
    return 0


def set_webhook(args: argparse.Namespace, ctx: Context) -> int:
    url = None if args.remove else args.url
    config = AlertConfigStore(ctx.engine).set_webhook(url, args.secret_env, actor=ctx.actor)
    if config.webhook_url is None:
        print("Alerts are no longer delivered to a webhook")
        return 0
    shown = config.to_json(masked=True)["webhook_url"]
    signed = f", signed with ${config.secret_env}" if config.secret_env else ", unsigned"
    print(f"Alerts are delivered to {shown}{signed}. Try it: gatehouse alerts test")
    return 0


def list_alerts(args: argparse.Namespace, ctx: Context) -> int:
    alerts = Alerts(ctx.engine)
    config = AlertConfigStore(ctx.engine).get()
    fired, deliveries = alerts.recent(args.limit), alerts.deliveries(args.limit)
    if args.json:
        print_json(
            {
                "rules": config.to_json(masked=True),
                "alerts": [a.to_json() for a in fired],
                "deliveries": deliveries,
            }
        )
        return 0
    rules = config.to_json(masked=True)
    hourly = usd(config.hourly_spend_usd) + "/hour" if config.hourly_spend_usd else "off"
    print(f"Hourly spend alert: {hourly}")
    print(f"Budget thresholds: {', '.join(f'{t}%' for t in config.budget_thresholds)}")
    print(f"Webhook: {rules['webhook_url'] or 'none'}")
    if not fired:
        print("No alerts have fired.")
        return 0
    print_table(["fired", "kind", "text"], [[_when(a), a.kind, a.text] for a in fired])
    return 0


def test_webhook(args: argparse.Namespace, ctx: Context) -> int:
    attempts = Alerts(ctx.engine).send_test()
    for a in attempts:
        print(f"try {a.attempt}: {'delivered' if a.ok else a.error}")
    return 0 if attempts and attempts[-1].ok else 1


def check(args: argparse.Namespace, ctx: Context) -> int:
    fired = Alerts(ctx.engine).check()
    for alert in fired:
        print(f"fired: {alert.text}")
    if not fired:
        print("No new alerts.")
    return 0


def _when(alert: FiredAlert) -> str:
    return f"{alert.fired_at:%Y-%m-%d %H:%M}"
