"""Charging sessions::

    gridlink transactions list [--station ID] [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from gridlink import queries
from gridlink.cli.output import print_rows, with_db
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    transactions = sub.add_parser("transactions", help="charging sessions")
    tx = transactions.add_subparsers(dest="action", required=True, parser_class=parser_class)
    tx_list = tx.add_parser("list", help="list transactions")
    tx_list.add_argument("--station")
    tx_list.add_argument("--json", action="store_true")
    tx_list.set_defaults(dispatch=list_transactions)


async def list_transactions(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, lambda db: queries.list_transactions(
        db, args.station)), args.json)
    return 0
