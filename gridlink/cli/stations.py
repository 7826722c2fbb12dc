"""The station registry and the id-tag store::

    gridlink stations add ID... [--password P] [--registration Accepted|Pending|Rejected]
    gridlink stations list [--json]
    gridlink tags add TAG [--status S] [--expiry ISO8601] [--parent TAG]
    gridlink tags list [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from gridlink import queries
from gridlink.cli.output import parse_time_option, print_rows, with_db
from services import id_tags
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    stations = sub.add_parser("stations", help="the station registry")
    st = stations.add_subparsers(dest="action", required=True, parser_class=parser_class)
    st_add = st.add_parser("add", help="register charge points")
    st_add.add_argument("ids", nargs="+", metavar="ID")
    st_add.add_argument("--password", help="Basic-auth password (security profile 1/2)")
    st_add.add_argument("--registration", choices=["Accepted", "Pending", "Rejected"],
                        default=None, help="BootNotification answer (default: Accepted)")
    st_add.set_defaults(dispatch=add_stations)
    st_list = st.add_parser("list", help="list charge points")
    st_list.add_argument("--json", action="store_true")
    st_list.set_defaults(dispatch=list_stations)

    tags = sub.add_parser("tags", help="the id-tag store")
    tg = tags.add_subparsers(dest="action", required=True, parser_class=parser_class)
    tg_add = tg.add_parser("add", help="add or update an id tag")
    tg_add.add_argument("tag")
    tg_add.add_argument("--status", choices=id_tags.STATUSES, default="Accepted")
    tg_add.add_argument("--expiry", help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")
    tg_add.add_argument("--parent", help="parent id tag (group)")
    tg_add.set_defaults(dispatch=add_tag)
    tg_list = tg.add_parser("list", help="list id tags")
    tg_list.add_argument("--json", action="store_true")
    tg_list.set_defaults(dispatch=list_tags)


async def add_stations(settings: Settings, args: argparse.Namespace) -> int:
    registration = args.registration or settings.default_registration
    await with_db(settings, lambda db: queries.add_stations(
        db, args.ids, registration=registration, password=args.password))
    print(f"added {len(args.ids)} station(s)")
    return 0


async def list_stations(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, queries.list_stations), args.json)
    return 0


async def add_tag(settings: Settings, args: argparse.Namespace) -> int:
    expiry = parse_time_option("--expiry", args.expiry)
    await with_db(settings, lambda db: queries.add_tag(
        db, args.tag, status=args.status, expiry=expiry, parent=args.parent))
    print(f"tag {args.tag} saved")
    return 0


async def list_tags(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, queries.list_tags), args.json)
    return 0
