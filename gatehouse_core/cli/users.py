"""`gatehouse users …`: add, list, disable, enable, set-password (passwords from stdin only),
set-role, unlock, and the console sessions: `sessions NAME`, `sign-out NAME`."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime

from ..auth import ROLES, UserInfo, UserStore
from ..errors import ConfigError
from ..sessions import SessionStore
from .context import Context
from .output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("users", help="manage console users and their roles")
    cmds = group.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    p = cmds.add_parser(
        "add", help="add a user; the password is read from standard input (or prompted)"
    )
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.set_defaults(handler=add_user)

    p = cmds.add_parser("list", help="list users and their roles")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=list_users)

    for action, handler, text in (
        ("disable", disable_user, "refuse a user's sign-ins (the last admin cannot be disabled)"),
        ("enable", enable_user, "allow a disabled user to sign in again"),
    ):
        p = cmds.add_parser(action, help=text)
        p.add_argument("name")
        p.set_defaults(handler=handler)

    p = cmds.add_parser(
        "set-password", help="replace a password (read from standard input or prompted)"
    )
    p.add_argument("name")
    p.set_defaults(handler=set_password)

    p = cmds.add_parser("set-role", help="change a user's role (the last admin cannot be demoted)")
    p.add_argument("name")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(handler=set_role)

    p = cmds.add_parser("unlock", help="lift a lockout after failed sign-ins")
    p.add_argument("name")
    p.set_defaults(handler=unlock_user)

    p = cmds.add_parser("sessions", help="a user's signed-in console sessions")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=list_sessions)

    p = cmds.add_parser("sign-out", help="end every console session of a user, in every browser")
    p.add_argument("name")
    p.set_defaults(handler=sign_out)


def _store(ctx: Context) -> UserStore:
    return UserStore(ctx.engine)


def read_password() -> str:
    """The new password: prompted twice at a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise ConfigError("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise ConfigError("no password on standard input; pipe it in, e.g. `printf '%s\\n' …`")
    return line


def add_user(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).create(args.name, read_password(), args.role, actor=ctx.actor)
    print(f"Added user {user.username} ({user.role})")
    return 0


def list_users(args: argparse.Namespace, ctx: Context) -> int:
    users = _store(ctx).list_users()
    if args.json:
        print_json([u.to_json() for u in users])
        return 0
    if not users:
        print("No users yet. Add one: gatehouse users add NAME --role admin")
        return 0
    print_table(
        ["username", "role", "status", "created", "last sign-in"],
        [
            [u.username, u.role, _status(u), _when(u.created_at), _when(u.last_login_at)]
            for u in users
        ],
    )
    return 0


def disable_user(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).set_disabled(args.name, True, actor=ctx.actor)
    print(f"Disabled user {user.username}")
    return 0


def enable_user(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).set_disabled(args.name, False, actor=ctx.actor)
    print(f"Enabled user {user.username}")
    return 0


def set_password(args: argparse.Namespace, ctx: Context) -> int:
    store = _store(ctx)
    store.get(args.name)  # a typo fails before the password is asked for
    user = store.set_password(args.name, read_password(), actor=ctx.actor)
    print(f"Set a new password for {user.username}")
    return 0


def set_role(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).set_role(args.name, args.role, actor=ctx.actor)
    print(f"{user.username} is now {user.role}")
    return 0


def unlock_user(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).unlock(args.name, actor=ctx.actor)
    print(f"Unlocked {user.username}")
    return 0


def list_sessions(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).get(args.name)
    sessions = SessionStore(ctx.engine).list_for(user.username)
    if args.json:
        print_json([s.to_json() for s in sessions])
        return 0
    if not sessions:
        print(f"{user.username} is not signed in anywhere.")
        return 0
    print_table(
        ["id", "since", "last seen", "expires", "via", "address", "browser"],
        [
            [
                str(s.id),
                _when(s.created_at),
                _when(s.last_seen_at),
                _when(s.expires_at),
                s.via,
                s.client_address or "-",
                (s.user_agent or "-")[:40],
            ]
            for s in sessions
        ],
    )
    return 0


def sign_out(args: argparse.Namespace, ctx: Context) -> int:
    user = _store(ctx).get(args.name)
    ended = SessionStore(ctx.engine).revoke_user(
        user.username, actor=ctx.actor, reason="signed out from the CLI"
    )
    print(
        f"Signed {user.username} out everywhere ({ended} session{'s' if ended != 1 else ''} ended)"
    )
    return 0


def _status(user: UserInfo) -> str:
    if user.disabled:
        return "disabled"
    if user.locked_until:
        return f"locked until {user.locked_until:%H:%M} UTC"
    return "active"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
