"""Charging sessions and their meter values::

    gridlink transactions list [--station ID] [--flagged] [--json]
    gridlink transactions samples [--station ID] [--transaction N] [--flagged] [--limit N]
                                  [--json]

``list`` shows each transaction's ``state`` (active, stopped, superseded: a newer start on
its connector closed it, ``supersededBy`` says which) and its ``flags``: what a check found
surprising (``transactions/checks.py``), then ``meter:<flag>`` for its meter values'.
``samples`` shows stored meter values, newest first, with their flags; ``--flagged`` lists
also those kept under their station because they named another station's transaction.
"""

from __future__ import annotations

import argparse
from typing import Any

from gridlink import queries
from gridlink.cli.output import positive, print_rows, with_db
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    transactions = sub.add_parser("transactions", help="charging sessions")
    tx = transactions.add_subparsers(dest="action", required=True, parser_class=parser_class)
    tx_list = tx.add_parser("list", help="list transactions")
    tx_list.add_argument("--station")
    tx_list.add_argument("--flagged", action="store_true",
                         help="only transactions with a flag (theirs or their meter values')")
    tx_list.add_argument("--json", action="store_true")
    tx_list.set_defaults(dispatch=list_transactions)
    tx_samples = tx.add_parser("samples", help="list stored meter values, newest first")
    tx_samples.add_argument("--station")
    tx_samples.add_argument("--transaction", type=int, help="those of (or naming) this "
                            "transactionId")
    tx_samples.add_argument("--flagged", action="store_true", help="only flagged ones")
    tx_samples.add_argument("--limit", type=int, default=100)
    tx_samples.add_argument("--json", action="store_true")
    tx_samples.set_defaults(dispatch=list_samples)


async def list_transactions(settings: Settings, args: argparse.Namespace) -> int:
    rows = await with_db(settings, lambda db: queries.list_transactions(
        db, args.station, flagged=args.flagged))
    print_rows(rows if args.json else _joined(rows), args.json)
    return 0


async def list_samples(settings: Settings, args: argparse.Namespace) -> int:
    positive("--limit", args.limit)
    rows = await with_db(settings, lambda db: queries.list_samples(
        db, station=args.station, transaction_id=args.transaction, flagged=args.flagged,
        limit=args.limit))
    print_rows(rows if args.json else _joined(rows), args.json)
    return 0


def _joined(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags as one comma-separated cell in a table."""
    return [{**row, "flags": ",".join(row["flags"]) or None} for row in rows]
