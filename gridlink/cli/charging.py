"""Smart Charging and site load management from the command line::

    gridlink groups add NAME (--max-current A | --max-power W) [--phases 3] [--voltage 230]
    gridlink groups assign NAME STATION[:CONNECTOR]... [--connector-max A] [--min A]
                           [--phases N]
    gridlink groups unassign NAME STATION[:CONNECTOR]...
    gridlink groups remove NAME
    gridlink groups list [--json]
    gridlink profiles list [--station ID] [--json]
    gridlink profiles composite [--station ID] [--json]

``groups add`` creates a group or changes its limit; ``assign`` adds members (a station's
connector, or the whole station) with their own maximum and minimum current per phase and
phases (an existing member gets the new values). The commands service picks the changes up
within seconds and re-shares the limit. ``profiles list`` shows the profiles each charger
accepted and still holds; ``profiles composite`` the GetCompositeSchedule answers.
Profiles are sent with ``gridlink command STATION SetChargingProfile '{...}'``.
"""

from __future__ import annotations

import argparse
from typing import Any

from commands.load_management import repository as group_store
from commands.load_management import rules as member_rules
from commands.smart_charging import repository as profile_store
from gridlink.cli.output import print_rows, with_db
from services.errors import ConfigurationError, GridLinkError
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    groups = sub.add_parser("groups", help="site load management: station groups and limits")
    gr = groups.add_subparsers(dest="action", required=True, parser_class=parser_class)
    add = gr.add_parser("add", help="create a group or change its limit",
                        epilog="example: gridlink groups add garage --max-current 63")
    add.add_argument("name")
    limit = add.add_mutually_exclusive_group(required=True)
    limit.add_argument("--max-current", type=float, metavar="A",
                       help="the group's limit in amperes per phase")
    limit.add_argument("--max-power", type=float, metavar="W",
                       help="the group's limit in watts (all phases)")
    add.add_argument("--phases", type=int, default=3,
                     help="phases of the supply and default of members (default 3)")
    add.add_argument("--voltage", type=float, default=230.0,
                     help="line voltage for watts <-> amperes (default 230)")

    assign = gr.add_parser("assign", help="add stations or connectors to a group",
                           epilog="example: gridlink groups assign garage CP001 CP002:1 "
                                  "--connector-max 32 --min 6")
    assign.add_argument("name")
    assign.add_argument("members", nargs="+", metavar="STATION[:CONNECTOR]")
    assign.add_argument("--connector-max", type=float, metavar="A",
                        help="each connector's own maximum, amperes per phase")
    assign.add_argument("--min", dest="min_current", type=float, metavar="A",
                        help="minimum charging rate, amperes per phase (below: paused)")
    assign.add_argument("--phases", type=int, help="phases the connectors charge with")

    unassign = gr.add_parser("unassign", help="remove stations or connectors from a group")
    unassign.add_argument("name")
    unassign.add_argument("members", nargs="+", metavar="STATION[:CONNECTOR]")

    remove = gr.add_parser("remove", help="delete a group")
    remove.add_argument("name")

    gr_list = gr.add_parser("list", help="groups, members and the current shares")
    gr_list.add_argument("--json", action="store_true")

    profiles = sub.add_parser("profiles", help="charging profiles the chargers were told")
    pr = profiles.add_subparsers(dest="action", required=True, parser_class=parser_class)
    pr_list = pr.add_parser("list", help="profiles each charger accepted and still holds")
    composite = pr.add_parser("composite", help="GetCompositeSchedule answers, newest first")
    for parser in (pr_list, composite):
        parser.add_argument("--station")
        parser.add_argument("--json", action="store_true")
    for parser in (add, assign, unassign, remove, gr_list):
        parser.set_defaults(dispatch=dispatch_groups)
    for parser in (pr_list, composite):
        parser.set_defaults(dispatch=dispatch_profiles)


def _members(texts: list[str]) -> list[tuple[str, int | None]]:
    return [member_rules.parse_member(text) for text in texts]


def _group_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups flattened for the table (``--json`` keeps the structure)."""
    table = []
    for row in rows:
        shares = [f"{t['station']}:{t['connector']}#{t['transactionId']}="
                  f"{'-' if t['accepted'] is None else t['accepted']}"
                  for t in row["transactions"]]
        table.append({"group": row["group"], "limit": row["limit"], "phases": row["phases"],
                      "voltage": row["voltage"], "members": ", ".join(row["members"]) or "-",
                      "allocated": row["allocated"], "shares": ", ".join(shares) or "-"})
    return table


async def dispatch_profiles(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = await with_db(settings, lambda db: profile_store.list_profiles(db, args.station))
    else:
        rows = await with_db(settings, lambda db: profile_store.list_composite_schedules(
            db, args.station))
    print_rows(rows, args.json)
    return 0


async def dispatch_groups(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "add":
        unit, value = ("A", args.max_current) if args.max_current is not None else (
            "W", args.max_power)
        member_rules.check_limit(unit, value, args.phases, args.voltage)
        created = await with_db(settings, lambda db: group_store.save_group(
            db, args.name, unit=unit, limit=value, phases=args.phases, voltage=args.voltage))
        print(f"group {args.name} {'created' if created else 'saved'}: {value:g} {unit}")
    elif args.action == "assign":
        members = _members(args.members)
        member_rules.check_member_limits(args.connector_max, args.min_current, args.phases)
        await with_db(settings, lambda db: group_store.assign(
            db, args.name, members, max_current=args.connector_max,
            min_current=args.min_current, phases=args.phases))
        print(f"assigned {len(members)} member(s) to {args.name}")
    elif args.action == "unassign":
        members = _members(args.members)
        removed = await with_db(settings, lambda db: group_store.unassign(db, args.name, members))
        if removed == 0:
            raise GridLinkError(f"none of these is a member of {args.name}")
        print(f"removed {removed} member(s) from {args.name}")
    elif args.action == "remove":
        await with_db(settings, lambda db: group_store.remove_group(db, args.name))
        print(f"group {args.name} removed")
    elif args.action == "list":
        rows = await with_db(settings, group_store.list_groups)
        print_rows(rows if args.json else _group_table(rows), args.json)
    else:  # pragma: no cover - argparse allows no other action
        raise ConfigurationError(f"unknown action {args.action!r}")
    return 0
